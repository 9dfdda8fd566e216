"""Benchmark: one poll of a night of new alerts, from the local Kowalski and from the local BOOM, side by side.

A night of N passing alerts over ~N/6.5 objects is synthesized from the 36 real ZTF packets (new
objectIds, candids consistent with their jd as ZTF's are, 6-7 alerts per object; each alert's
prv_candidates = the base packet's history shifted to the night + the object's earlier alerts of the
night). The same night is served, each stand-in in its own subprocess with the same added latency per
request (20 ms), by:

- `KowalskiSim`, polled by the bot's Kowalski poller (real penquins);
- `BoomSim` with the cutouts collection (`ZTF_alerts_cutouts` joined to the alert documents by one
  `/queries/pipeline` `$lookup` per batch);
- `BoomSim` without it (`cutout_catalog=False`: cutouts kept outside MongoDB, one
  `GET /surveys/ztf/cutouts` per new alert that passed the pre-filter),

both BOOM ones polled by `BoomPoller` through `BoomClient` (its defaults: 4 queries in flight, at most 40
requests/s), behind a stand-in of BOOM's proxy rate limit
(50 requests/s per client, burst 200, answered 429 + Retry-After as `bot.sim.faults` does; `--rate 0`
turns it off). The pollers get the same settings (`--poller bench`: one chunk for the whole night, the
benchmark's historical settings; `--poller config`: the configuration's defaults, the night in chunks).
For each we count the HTTP requests (by endpoint, as the stand-in saw them; login and catalog check
not included), the 429s, the wall time, the alerts and objects returned, and check that BOOM returns
the same candids and the same histories (and the same 25 features) as Kowalski.

    python benchmarks/bench_poll.py                      # 200 and 2,000 alerts
    python benchmarks/bench_poll.py --sizes 200 2000 20000 --sources kowalski boom

Target (2,000 alerts, 2-core machine): < 40 requests and < 10 s from Kowalski; the issue asks as few
requests and as little time from BOOM with the cutouts collection. "bot cpu" is the polling process's own
CPU time (all threads): with BOOM most of it is parsing its JSON arrays of byte values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALERT_DIR = REPO.parent / "shared" / "alerts" / "ztf"
sys.path.insert(0, str(REPO))

from bot.sim.faults import Fault, Faults  # noqa: E402
from bot.sim.night import CUTOUTS, NIGHT_JD, busy_night  # noqa: E402,F401  (NIGHT_JD: for bench_cycle and bench_memory)
from bot.scoring.cpu import cpu_line  # noqa: E402


BOOM_USER, BOOM_PASSWORD = "bench", "bench-pw"
SOURCES = {  # name -> row label
    "kowalski": "Kowalski",
    "boom": "BOOM, cutouts in MongoDB",
    "boom-nocat": "BOOM, cutouts outside MongoDB",
}
RATE_PER_S, BURST = 50.0, 200  # BOOM's proxy: 50 requests/s per client, burst 200 (docs/contracts.md)


def synthesize(n_alerts: int, seed: int = 1) -> list[dict]:
    return busy_night(n_alerts, ALERT_DIR, seed)


BULK_ABOVE = 5000  # the stand-ins' ingestion is quadratic (a linear find per alert): bulk-load big nights


def bulk_load_kowalski(sim, alerts: list[dict]) -> None:
    """What KowalskiSim._ingest does, alert by alert, done with two insert_many (distinct candids)."""
    from bot.sim import kowalski as K

    docs, aux = [], {}
    for alert in alerts:
        doc = {k: v for k, v in alert.items() if k not in ("prv_candidates", "fp_hists")}
        doc.pop("_id", None)  # insert_many gives it an ObjectId, as Mongo does on Kowalski (not the candid)
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
    from bot.sim.kowalski.aux_docs import cross_matches

    sim.db[K.AUX].insert_many([{"_id": oid, "cross_matches": cross_matches(), "prv_candidates": prv}
                               for oid, (_, prv) in aux.items()])  # fp_hists left out: the poller never reads them


def bulk_load_boom(sim, alerts: list[dict]) -> None:
    """What BoomSim._ingest does, alert by alert, done with one insert_many per collection."""
    from bot.sim.boom import documents as D

    for name, docs in D.ingest(alerts).items():
        sim.db[name].insert_many(list(docs.values()))


@dataclass
class ProxyRateLimit(Faults):
    """The stand-ins' faults + a token bucket in front of every request, as BOOM's proxy limits a client:
    `rate_per_s` requests/s, at most `burst` back to back; beyond, 429 with Retry-After (rounded up to whole
    seconds by the stand-in, as HTTP says). One client per run: one bucket."""

    rate_per_s: float = 0.0
    burst: int = BURST
    throttled: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._tokens, self._last = float(self.burst), time.monotonic()

    def decide(self, method: str, path: str) -> Fault | None:
        fault = super().decide(method, path)
        if fault is not None or self.rate_per_s <= 0:
            return fault
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            self.throttled += 1
            wait = (1.0 - self._tokens) / self.rate_per_s
        return Fault("429", status=429, retry_after_s=wait)


def serve(kind: str, n_alerts: int, latency_s: float, rate_per_s: float) -> None:
    """Child process: serve a synthesized night until stdin closes; a line "counts" on stdin answers the
    requests the stand-in saw so far (JSON: by endpoint, and the 429s of the rate limit)."""
    alerts = synthesize(n_alerts)
    if kind == "kowalski":
        from bot.sim.kowalski import KowalskiSim

        sim = KowalskiSim()
        sim.faults.latency_s = latency_s
        if n_alerts > BULK_ABOVE:
            bulk_load_kowalski(sim, alerts)
        else:
            sim.load_alerts(alerts)
            sim.ingest_due()  # everything visible (unbounded clock), ingested before the clock starts
        sim.start()
        ident = sim.token
    else:
        from bot.sim.boom.server import BoomSim

        faults = ProxyRateLimit(latency_s=latency_s, rate_per_s=rate_per_s)
        sim = BoomSim(users={BOOM_USER: BOOM_PASSWORD}, faults=faults, cutout_catalog=(kind == "boom"))
        if n_alerts > BULK_ABOVE:
            bulk_load_boom(sim, alerts)
        else:
            sim.load_alerts(alerts)
        sim.start()
        ident = "-"
    print(f"READY {sim.port} {ident} {len({a['objectId'] for a in alerts})}", flush=True)
    for line in sys.stdin:
        if line.strip() == "counts":
            counts = dict(sim.request_counts)
            print(json.dumps({"counts": counts, "throttled": getattr(sim.faults, "throttled", 0)}), flush=True)
    sim.stop()


class Child:
    """A stand-in serving a synthesized night in a child process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        line = proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError("the stand-in did not start")
        self.port, self.token, self.n_objects = int(line[1]), line[2], int(line[3])

    def counts(self) -> dict:
        self.proc.stdin.write("counts\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())


@contextlib.contextmanager
def served(kind: str, n_alerts: int, latency_s: float, rate_per_s: float, env: dict | None = None):
    """The stand-in `kind` serving a synthesized night in a child process: yields a `Child`."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", kind, str(n_alerts),
                             "--latency", str(latency_s), "--rate", str(rate_per_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO), env=env)
    try:
        yield Child(proc)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def poller_settings(kind: str, which: str) -> dict:
    """The pollers' settings: the benchmark's (one chunk) or the configuration's defaults (the same for both
    brokers: `_PollKeys`)."""
    if which == "bench":
        return {}  # the Poller constructor's defaults: page 10,000, cutout_batch 500, history_batch 200, one chunk
    from bot.config import BoomConfig, KowalskiConfig

    c = (KowalskiConfig if kind == "kowalski" else BoomConfig)()
    return dict(page_size=c.page_size, overlap_days=c.overlap_days, cutout_batch=c.cutout_batch,
                history_batch=c.history_batch, programids=c.programids, chunk_alerts=c.chunk_alerts)


def run(kind: str, n_alerts: int, latency_s: float, rate_per_s: float, which: str) -> dict:
    """Poll the night from the stand-in `kind`: requests, time, what came back."""
    from bot.journal import Journal

    with served(kind, n_alerts, latency_s, rate_per_s) as child, tempfile.TemporaryDirectory() as tmp:
        if kind == "kowalski":
            from bot.kowalski.client import KowalskiClient
            from bot.kowalski.poller import Poller

            client = KowalskiClient(protocol="http", host="127.0.0.1", port=child.port, token=child.token).connect()
            cls = Poller
        else:
            from bot.boom.client import BoomClient
            from bot.boom.poller import BoomPoller

            client = BoomClient(f"http://127.0.0.1:{child.port}", BOOM_USER, BOOM_PASSWORD).connect()
            assert client.has_cutout_catalog == (kind == "boom")
            cls = BoomPoller
        poller = cls(client, Journal(Path(tmp) / "journal.sqlite"), **poller_settings(kind, which))
        before = child.counts()
        t0, c0, r0 = time.perf_counter(), time.process_time(), client.requests
        alerts, histories, n_pages, n_chunks, missing = [], {}, 0, 0, []
        for batch in poller.chunks(since_jd=NIGHT_JD - 0.1, until_jd=NIGHT_JD + 1.0):
            alerts += batch.alerts
            histories.update(batch.histories)
            n_pages, n_chunks, missing = n_pages + batch.n_pages, n_chunks + 1, missing + batch.missing_cutouts
        seconds, requests = time.perf_counter() - t0, client.requests - r0
        cpu = time.process_time() - c0  # the bot's own CPU (all its threads): decoding, not the stand-in
        after = child.counts()
        by_endpoint = {k: v - before["counts"].get(k, 0) for k, v in after["counts"].items()
                       if v - before["counts"].get(k, 0)}
        assert len(alerts) == n_alerts and not missing, (len(alerts), missing[:5])
        assert all(isinstance(a[c]["stampData"], bytes) for a in alerts for c in CUTOUTS)
        assert len(histories) == child.n_objects and all(histories[a["objectId"]] for a in alerts)
        client.close()
        poller.state.close()
        return {"kind": kind, "alerts": n_alerts, "objects": len(histories), "requests": requests,
                "by_endpoint": by_endpoint, "throttled": after["throttled"] - before["throttled"],
                "seconds": seconds, "cpu": cpu, "pages": n_pages, "chunks": n_chunks,
                "history_entries": sum(len(h) for h in histories.values()),
                "result": (alerts, histories)}


def _r(x, nd=6):
    return None if x is None else round(float(x), nd)


def history_signature(entries: list[dict]) -> list[tuple]:
    """What a history means to the features, whatever the broker's document shape (BOOM: nulls left out,
    isdiffpos a boolean turned back into "t"/"f"; Kowalski: the packet's values)."""
    from bot.core.features import history_key
    from bot.sim.boom.documents import is_positive

    return sorted((history_key(e), _r(e.get("jd"), 8), e.get("fid"), e.get("programid"), _r(e.get("magpsf")),
                   _r(e.get("sigmapsf")), _r(e.get("diffmaglim")),
                   None if e.get("isdiffpos") is None else is_positive(e["isdiffpos"])) for e in entries)


def compare(ref: dict, got: dict) -> str:
    """Whether `got` returned what `ref` did: the same candids (same order) and cutouts, the same histories
    (entry by entry, `history_signature`) and the same 25 features (1e-6); else what differs, with the
    cause when it is BOOM's storage: `ZTF_alerts_aux` de-duplicated on jd alone keeps one of two
    detections of one exposure that never were alerts in `ZTF_alerts` (docs/contracts.md)."""
    import numpy as np

    from bot.core.features import FeatureError, feature_row

    (ra, rh), (ga, gh) = ref["result"], got["result"]
    if [int(a["candid"]) for a in ra] != [int(a["candid"]) for a in ga]:
        return "NO: candids differ"
    if any(x[c]["stampData"] != y[c]["stampData"] for x, y in zip(ra, ga) for c in CUTOUTS):
        return "NO: cutouts differ"
    if set(rh) != set(gh):
        return "NO: objects differ"
    bad_objects, jd_dups, other = [], 0, 0
    for oid in rh:
        x, y = history_signature(rh[oid]), history_signature(gh[oid])
        if x == y:
            continue
        bad_objects.append(oid)
        kept_jds = {e[1] for e in y}
        for e in set(x) - set(y):  # a detection missing at a jd BOOM kept another one of: its aux jd-dedup
            jd_dups += e[0][0] == "candid" and e[1] in kept_jds
            other += not (e[0][0] == "candid" and e[1] in kept_jds)
        other += len(set(y) - set(x))
    n_bad_feat = n_feat = 0
    for x, y in zip(ra, ga):
        out = []
        for a, h in ((x, rh), (y, gh)):
            try:
                out.append(feature_row(a["candidate"], h[a["objectId"]], 0.5))
            except FeatureError as exc:
                out.append(str(exc))
        fx, fy = out
        if isinstance(fx, str) or isinstance(fy, str):
            n_bad_feat += not (isinstance(fx, str) and fx == fy)
            continue
        n_feat += 1
        n_bad_feat += not np.allclose(fx, fy, rtol=0, atol=1e-6)
    if not bad_objects and not n_bad_feat:
        return "yes"
    text = (f"histories: {len(rh) - len(bad_objects)}/{len(rh)} objects identical"
            + (f", {jd_dups} detection(s) sharing a jd dropped by BOOM's aux jd-dedup" if jd_dups else "")
            + (f", {other} other difference(s)" if other else "")
            + f"; features: {len(ra) - n_bad_feat}/{len(ra)} alerts identical")
    return ("NO: " if other else "candids+cutouts yes; ") + text


SHORT = {"POST /api/queries": "queries", "POST /queries/find": "find", "POST /queries/pipeline": "pipeline",
         "GET /surveys/ztf/cutouts": "cutouts",
         "POST /auth": "auth", "GET /catalogs": "catalogs"}


def endpoints(by: dict) -> str:
    return ", ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000], help="alerts per night (default 200 2000)")
    ap.add_argument("--latency", type=float, default=0.02, help="added latency per request, s (default 0.02)")
    ap.add_argument("--rate", type=float, default=RATE_PER_S,
                    help=f"BOOM proxy rate limit, requests/s per client, burst {BURST} (default {RATE_PER_S:g}, 0: off)")
    ap.add_argument("--sources", nargs="+", choices=list(SOURCES), default=list(SOURCES),
                    help="stand-ins to poll (default all three; kowalski is the reference for the comparison)")
    ap.add_argument("--poller", choices=("bench", "config"), default="bench",
                    help="poller settings: bench (one chunk, cutout_batch 500) or config (the configuration's "
                         "defaults: chunks of 200, cutout_batch 200)")
    ap.add_argument("--serve", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve(args.serve[0], int(args.serve[1]), args.latency, args.rate)
        return 0
    if not ALERT_DIR.is_dir():
        print(f"no alert packets at {ALERT_DIR}", file=sys.stderr)
        return 1
    load0 = os.getloadavg()
    print(cpu_line())
    print(f"one poll of the night, each stand-in in its own process, {args.latency * 1000:.0f} ms latency/request; "
          f"BOOM behind a {args.rate:g} requests/s (burst {BURST}) rate limit; poller settings: {args.poller}; "
          "requests = the poll's (login and catalog check not counted)")
    head = (f"{'source':<30} {'alerts':>7} {'objects':>7} {'requests':>8} {'429s':>5} {'seconds':>8} {'bot cpu':>7} {'chunks':>6} "
            f"{'hist.entries':>12}  by endpoint")
    print(head)
    rows = []
    for n in args.sizes:
        ref = None
        for kind in args.sources:
            r = run(kind, n, args.latency, args.rate, args.poller)
            if kind == "kowalski":
                ref = r
            else:
                same = compare(ref, r) if ref is not None else "not compared (no Kowalski row)"
            print(f"{SOURCES[kind]:<30} {r['alerts']:>7} {r['objects']:>7} {r['requests']:>8} {r['throttled']:>5} "
                  f"{r['seconds']:>8.2f} {r['cpu']:>7.2f} {r['chunks']:>6} {r['history_entries']:>12}  "
                  f"{endpoints(r['by_endpoint'])}", flush=True)
            if kind != "kowalski":
                print(f"{'':<30} same alerts and histories as Kowalski: {same}", flush=True)
            rows.append(r)
        for r in rows:
            r.pop("result", None)  # the night's alerts: drop them before the next size
    print(f"load average before/after: {load0} / {os.getloadavg()}")
    for r in rows:
        n_get = r["by_endpoint"].get("GET /surveys/ztf/cutouts", 0)
        if r["kind"] != "boom-nocat" or not n_get:
            continue
        n, others = r["alerts"], r["requests"] - n_get
        from bot.boom.client import RATE_BURST
        from bot.config import BoomConfig

        limit = min(BoomConfig().max_requests_per_s, RATE_PER_S if args.rate else float("inf"))
        floor = max(0, n - RATE_BURST) / limit
        print(f"{n} alerts, cutouts outside MongoDB: {n} cutout GETs (+{r['throttled']} answered 429, retried after "
              f"Retry-After) + {others} finds, {BoomConfig().max_concurrent} at a time under the client's own "
              f"limit of {BoomConfig().max_requests_per_s:g} requests/s (boom.max_requests_per_s; the proxy allows "
              f"{RATE_PER_S:g}/s, burst {BURST}): >= {floor:.1f} s whatever the latency. Measured "
              + ("with the proxy limit enforced by the stand-in: " if args.rate else "without a proxy limit: ")
              + f"{r['seconds']:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
