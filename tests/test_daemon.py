"""The daemon: APScheduler runs the cycle; a failed cycle is logged and the next one catches up."""

import logging
import threading
import time

from conftest import EXAMPLE_UNTIL, SN

from bot.config import load_config
from bot.daemon import run_daemon
from bot.journal import Journal
from bot.runtime import open_runtime


def test_daemon_outlives_a_failed_cycle_and_acts_once(example_kowalski, skyportal, write_config, onnx_scorer, caplog):
    config = write_config(example_kowalski, skyportal, kowalski={"overlap_days": 100.0}, schedule={"interval_minutes": 0.005})
    cfg = load_config(config)
    rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: EXAMPLE_UNTIL)
    example_kowalski.faults.push(*["500"] * 12, match="POST /api/queries")  # Kowalski down for the first cycle
    stop = threading.Event()
    caplog.set_level(logging.INFO)
    daemon = threading.Thread(target=run_daemon, args=(cfg, rt, stop))
    daemon.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not rt.journal.get_decision("bts_p2", SN):
            time.sleep(0.2)
        time.sleep(1.0)  # a few more (empty) cycles
    finally:
        stop.set()
        daemon.join(30)
    assert not daemon.is_alive()
    assert any("cycle failed" in r.message for r in caplog.records)
    with Journal(cfg.journal_path) as journal:  # the daemon closed its runtime on the way out
        assert journal.get_decision("bts_p1", SN) and journal.get_decision("bts_p2", SN)
    posts = [r for r in skyportal.requests if r["method"] == "POST" and r["path"] == "/api/followup_request"]
    assert len(posts) == 1
    assert sum("0 new" in r.message for r in caplog.records) >= 1  # later cycles found nothing new


def test_the_daemon_on_boom_outlives_a_failed_cycle_and_acts_once(example_kowalski, example_packets, skyportal,
                                                                  write_config, onnx_scorer, caplog):
    """`source: boom`: the same daemon, BOOM down (500s) for the first cycle, then the same single follow-up."""
    import yaml

    from bot.sim.boom.server import BoomSim

    with BoomSim(users={"bot": "pw"}) as boom:
        boom.load_alerts(example_packets)
        config = write_config(example_kowalski, skyportal, schedule={"interval_minutes": 0.005})
        data = yaml.safe_load(config.read_text())
        data.update(source="boom", boom={"url": boom.url, "username": "bot", "password": "pw", "timeout_s": 5.0,
                                         "max_time_ms": 4000, "backoff_s": 0.01, "overlap_days": 100.0})
        config.write_text(yaml.safe_dump(data))
        cfg = load_config(config)
        rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: EXAMPLE_UNTIL)
        boom.faults.push(*["500"] * 12, match="POST /queries/find")  # BOOM down for the first cycle
        stop = threading.Event()
        caplog.set_level(logging.INFO)
        daemon = threading.Thread(target=run_daemon, args=(cfg, rt, stop))
        daemon.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not rt.journal.get_decision("bts_p2", SN):
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            stop.set()
            daemon.join(30)
    assert not daemon.is_alive()
    assert any("cycle failed" in r.message for r in caplog.records)
    with Journal(cfg.journal_path) as journal:
        assert journal.get_decision("bts_p1", SN) and journal.get_decision("bts_p2", SN)
        sources = {r["source"] for r in journal.history(kind="alerts")}
    assert sources == {"boom"}
    posts = [r for r in skyportal.requests if r["method"] == "POST" and r["path"] == "/api/followup_request"]
    assert len(posts) == 1
