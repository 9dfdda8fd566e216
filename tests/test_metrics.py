"""Prometheus metrics and health of the daemon, against the stand-ins: they agree with the journal."""

import json
import socket
import threading
import time

import requests
from conftest import EXAMPLE_UNTIL, SN

from bot.config import load_config
from bot.daemon import run_daemon
from bot.runtime import open_runtime


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return None


def wait_for(cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except requests.ConnectionError:  # the server is not up yet
            pass
        time.sleep(0.2)
    return False


def start(cfg, rt):
    stop = threading.Event()
    t = threading.Thread(target=run_daemon, args=(cfg, rt, stop))
    t.start()
    return stop, t


def test_metrics_and_health_agree_with_the_journal(example_kowalski, skyportal, write_config, onnx_scorer):
    port = free_port()
    cfg = load_config(write_config(example_kowalski, skyportal, kowalski={"overlap_days": 100.0},
                                   schedule={"interval_minutes": 10}, metrics={"port": port}))
    rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: EXAMPLE_UNTIL)
    stop, t = start(cfg, rt)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: (metric(requests.get(f"{url}/metrics", timeout=5).text, "btsbot_cycles_total",
                                        result="ok") or 0) >= 1)
        text = requests.get(f"{url}/metrics", timeout=5).text
        health = requests.get(f"{url}/healthz", timeout=5)
        history = rt.journal.history()
    finally:
        stop.set()
        t.join(30)
    alerts = [r for r in history if r["kind"] == "alert"]
    decisions = [r for r in history if r["kind"] == "decision"]
    actions = [r for r in history if r["kind"] == "action"]
    assert metric(text, "btsbot_alerts_total", status="new") == len(alerts)
    assert metric(text, "btsbot_alerts_total", status="scored") == sum(a["status"] == "ok" for a in alerts)
    for policy in {d["policy"] for d in decisions}:
        assert metric(text, "btsbot_decisions_total", policy=policy) == sum(d["policy"] == policy for d in decisions)
    assert {d["objectId"] for d in decisions} == {SN}
    for a in actions:
        n = sum(x["action"] == a["action"] and x["outcome"] == a["outcome"] for x in actions)
        assert metric(text, "btsbot_actions_total", action=a["action"], outcome=a["outcome"]) == n
    pending = sum(a["status"] == "pending" for a in actions)
    assert metric(text, "btsbot_pending_actions") == pending
    assert metric(text, "btsbot_last_cycle_success_timestamp_seconds") > time.time() - 120
    assert metric(text, "btsbot_cycle_duration_seconds_count") == 1
    assert health.status_code == 200
    body = health.json()
    assert body["mode"] == "live" and body["pending_actions"] == pending and body["last_success"]


def test_health_turns_503_after_failed_cycles(example_kowalski, skyportal, write_config, onnx_scorer):
    port = free_port()
    cfg = load_config(write_config(example_kowalski, skyportal, kowalski={"retries": 0},
                                   schedule={"interval_minutes": 0.01}, metrics={"port": port},
                                   health={"max_failed_cycles": 2}))
    rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: EXAMPLE_UNTIL)
    example_kowalski.faults.push(*["500"] * 1000, match="POST /api/queries")  # Kowalski down after the start-up
    stop, t = start(cfg, rt)
    url = f"http://127.0.0.1:{port}"
    try:
        seen = []
        assert wait_for(lambda: seen.append(requests.get(f"{url}/healthz", timeout=5)) or seen[-1].status_code == 503)
        body = seen[-1].json()
        text = requests.get(f"{url}/metrics", timeout=5).text
    finally:
        stop.set()
        t.join(30)
    assert body["status"] == "failing" and body["failed_cycles_in_a_row"] >= 2 and body["last_success"] is None
    assert metric(text, "btsbot_cycles_total", result="failed") >= 2
    assert metric(text, "btsbot_cycles_total", result="ok") == 0
    assert [r.status_code for r in seen if r.json()["failed_cycles_in_a_row"] < 2] == \
        [200] * sum(r.json()["failed_cycles_in_a_row"] < 2 for r in seen)


def test_health_turns_503_with_kowalski_stopped(skyportal, write_config, onnx_scorer, example_packets, caplog):
    """Kowalski goes down after the start-up (its port refuses connections, including the connection the
    client kept alive): one clear line per failed cycle, and /healthz 503 after max_failed_cycles."""
    from bot.sim.kowalski import KowalskiSim

    port = free_port()
    kowalski = KowalskiSim()
    kowalski.start()
    kowalski.load_alerts(example_packets)
    cfg = load_config(write_config(kowalski, skyportal, kowalski={"retries": 1}, schedule={"interval_minutes": 0.01},
                                   metrics={"port": port}, health={"max_failed_cycles": 2}))
    rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: EXAMPLE_UNTIL)
    kowalski.stop()
    stop, t = start(cfg, rt)
    try:
        seen = []
        assert wait_for(lambda: seen.append(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5))
                        or seen[-1].status_code == 503)
    finally:
        stop.set()
        t.join(30)
    assert seen[-1].json()["failed_cycles_in_a_row"] >= 2
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cycle failed")]
    assert failed and failed[0].startswith(f"cycle failed: find on ZTF_alerts: cannot reach Kowalski at "
                                           f"http://127.0.0.1:{kowalski.port} (kowalski.host/port): connection refused")
    assert "next try at" in failed[0] and "\n" not in failed[0]
