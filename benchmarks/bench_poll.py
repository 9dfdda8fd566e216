"""Benchmark: one poll of a night of new alerts, against the Kowalski stand-in in a separate process.

A night of N passing alerts over ~N/6.5 objects is synthesized from the 36 real ZTF packets (new
objectIds, candids and jds; 6-7 alerts per object; each alert's prv_candidates = the base packet's
history shifted to the night + the object's earlier alerts of the night), served by `KowalskiSim` in a
subprocess with 20 ms added latency per request. The bot's poller (real penquins) then fetches every
alert, its three cutouts and its object's history; we count HTTP requests and wall time.

    python benchmarks/bench_poll.py                      # 200 and 2,000 alerts
    python benchmarks/bench_poll.py --sizes 200 2000 20000

Target (2,000 alerts, 2-core machine): < 40 requests and < 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALERT_DIR = REPO.parent / "shared" / "alerts" / "ztf"
sys.path.insert(0, str(REPO))

NIGHT_JD = 2460600.65  # the synthesized night starts here
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


def synthesize(n_alerts: int, seed: int = 1) -> list[dict]:
    """n_alerts passing alerts (positive, programid 1, magpsf < 19) over ~n_alerts/6.5 objects."""
    from bot.alert_files import iter_alert_files

    rng = random.Random(seed)
    packets = [a for f in iter_alert_files([ALERT_DIR]) for a in f.alerts]
    alerts: list[dict] = []
    obj = 0
    while len(alerts) < n_alerts:
        base = packets[obj % len(packets)]
        oid = "ZTF24" + "".join(rng.choice(string.ascii_lowercase) for _ in range(7))
        n = min(rng.choice((6, 7)), n_alerts - len(alerts))
        shift = NIGHT_JD - base["candidate"]["jd"]
        history = []
        for p in base["prv_candidates"] or []:
            h = dict(p)
            h["jd"] = p["jd"] + shift - 1.0  # the base packet's history, ending the night before
            if h.get("candid") is not None:
                h["candid"] = 4 * 10**18 + len(alerts) * 1000 + len(history)
            history.append(h)
        for k in range(n):
            c = dict(base["candidate"])
            c["jd"] = NIGHT_JD + 0.04 * k + rng.random() * 0.03
            c["candid"] = 3 * 10**18 + len(alerts)
            c["isdiffpos"], c["programid"] = "t", 1
            c["magpsf"] = 16.0 + rng.random() * 2.9
            c["fid"] = 1 + k % 2
            alert = {"schemavsn": base["schemavsn"], "publisher": base["publisher"], "objectId": oid,
                     "candid": c["candid"], "candidate": c, "prv_candidates": list(history),
                     **{name: dict(base[name]) for name in CUTOUTS}}
            alerts.append(alert)
            history.append({k2: v for k2, v in c.items() if k2 in (base["prv_candidates"] or [c])[0]})
        obj += 1
    return alerts


BULK_ABOVE = 5000  # the stand-in's ingestion is quadratic (a linear find_one per alert): bulk-load big nights


def bulk_load(sim, alerts: list[dict]) -> None:
    """What KowalskiSim._ingest does, alert by alert, done with two insert_many (distinct candids)."""
    from bot.sim import kowalski as K

    docs, aux = [], {}
    for alert in alerts:
        doc = {k: v for k, v in alert.items() if k not in ("prv_candidates", "fp_hists")}
        doc["_id"] = alert["candid"]
        doc.setdefault("classifications", {})
        doc["coordinates"] = K._coordinates(alert["candidate"]["ra"], alert["candidate"]["dec"])
        docs.append(doc)
        entry = aux.setdefault(alert["objectId"], ({}, []))
        for p in alert.get("prv_candidates") or []:
            p = {k: v for k, v in p.items() if v is not None}
            if (p.get("jd"), p.get("fid")) not in entry[0]:
                entry[0][(p.get("jd"), p.get("fid"))] = True
                entry[1].append(p)
    sim.db[K.ALERTS].insert_many(docs)
    sim.db[K.AUX].insert_many([{"_id": oid, "cross_matches": {}, "prv_candidates": prv}
                               for oid, (_, prv) in aux.items()])


def serve(n_alerts: int, latency_s: float) -> None:
    """Child process: serve a synthesized night until stdin closes."""
    from bot.sim.kowalski import KowalskiSim

    sim = KowalskiSim()
    sim.faults.latency_s = latency_s
    alerts = synthesize(n_alerts)
    if n_alerts > BULK_ABOVE:
        bulk_load(sim, alerts)
    else:
        sim.load_alerts(alerts)
        sim.ingest_due()  # everything visible (unbounded clock), ingested before the clock starts
    sim.start()
    print(f"READY {sim.port} {sim.token} {len({a['objectId'] for a in alerts})}", flush=True)
    sys.stdin.read()
    sim.stop()


@contextlib.contextmanager
def served(n_alerts: int, latency_s: float, env: dict | None = None):
    """The stand-in serving a synthesized night in a child process: yields (port, token, n_objects)."""
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(n_alerts), "--latency",
                              str(latency_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=str(REPO), env=env)
    try:
        line = child.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError("the Kowalski stand-in did not start")
        yield int(line[1]), line[2], int(line[3])
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()


def run(n_alerts: int, latency_s: float) -> dict:
    from bot.journal import Journal
    from bot.kowalski.client import KowalskiClient
    from bot.kowalski.poller import Poller

    with served(n_alerts, latency_s) as (port, token, n_objects), tempfile.TemporaryDirectory() as tmp:
        client = KowalskiClient(protocol="http", host="127.0.0.1", port=port, token=token).connect()
        poller = Poller(client, Journal(Path(tmp) / "journal.sqlite"))  # one chunk: the whole window
        t0, r0 = time.perf_counter(), client.requests
        batch = poller.poll(since_jd=NIGHT_JD - 0.1, until_jd=NIGHT_JD + 1.0)
        seconds, requests = time.perf_counter() - t0, client.requests - r0
        assert batch.n_new == n_alerts and not batch.missing_cutouts, (batch.n_new, batch.missing_cutouts)
        assert all(isinstance(a[c]["stampData"], bytes) for a in batch.alerts for c in CUTOUTS)
        assert len(batch.histories) == n_objects and all(batch.histories[a["objectId"]] for a in batch.alerts)
        n_hist = sum(len(h) for h in batch.histories.values())
        client.close()
        poller.state.close()
        return {"alerts": n_alerts, "objects": n_objects, "requests": requests, "seconds": seconds,
                "pages": batch.n_pages, "history_entries": n_hist}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000], help="alerts per night (default 200 2000)")
    ap.add_argument("--latency", type=float, default=0.02, help="added latency per request, s (default 0.02)")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.latency)
        return 0
    if not ALERT_DIR.is_dir():
        print(f"no alert packets at {ALERT_DIR}", file=sys.stderr)
        return 1
    print(f"one poll, stand-in in a separate process, {args.latency * 1000:.0f} ms latency/request, "
          f"{os.cpu_count()} CPUs")
    print(f"{'alerts':>8} {'objects':>8} {'requests':>9} {'seconds':>8} {'pages':>6} {'hist.entries':>13}")
    for n in args.sizes:
        r = run(n, args.latency)
        print(f"{r['alerts']:>8} {r['objects']:>8} {r['requests']:>9} {r['seconds']:>8.2f} {r['pages']:>6} "
              f"{r['history_entries']:>13}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
