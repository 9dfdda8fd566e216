"""Benchmark: one daemon cycle over a night of new alerts, `onnx` and `onnx-int8` side by side.

The night is the one `bench_poll.py` synthesizes from the 36 real packets (6-7 alerts per object),
served by the Kowalski stand-in in a separate process with 20 ms added latency per request (real
penquins client). Each backend runs in its own child process (its own peak RSS, read from `os.wait4`;
the stand-in is not counted): it opens the runtime with the default configuration (dry-run, no Fritz
token: every decision and action is journaled, nothing is sent), warms the models up on the real
packets of ../shared (not journaled), then runs `run_cycle` once over the night. Timed: from the poll's
start to the last policy decision (the end of the last chunk's planning: the decisions of every chunk
are journaled by then), and the whole cycle (then the annotations and the dry-run actions).

    python benchmarks/bench_cycle.py [--n 2000] [--latency 0.02] [--cache DIR] [--backends onnx onnx-int8]

Target (2,000 alerts, 2-core machine): poll -> last policy decision < 10 s with `onnx-int8`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from bench_poll import NIGHT_JD, served  # noqa: E402


def child(backend: str, port: int, token: str, cache: str, journal: str) -> dict:
    """In the child process: the cycle, timed; returns what the parent prints."""
    import bot.cycle as cycle
    from bot.alert_files import iter_alert_files
    from bot.config import load_config
    from bot.runtime import open_runtime

    cfg = load_config(overrides={
        "mode": "dry-run",
        "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": port, "token": token, "timeout_s": 120.0,
                     "max_time_ms": 100000},
        "skyportal": {"url": "http://127.0.0.1:9", "token": None},
        "state": {"path": journal},
        "models": {"cache_dir": cache, "backend": backend},
    }, env={})
    t_load = time.perf_counter()
    rt = open_runtime(cfg)
    t_load = time.perf_counter() - t_load
    rt.scorer.score([a for f in iter_alert_files([SHARED / "alerts" / "ztf"]) for a in f.alerts])  # warm-up
    planned = []
    plan = cycle._plan

    def timed_plan(*args, **kwargs):
        out = plan(*args, **kwargs)
        planned.append(time.perf_counter())
        return out

    cycle._plan = timed_plan
    t0 = time.perf_counter()
    report = cycle.run_cycle(rt, since_jd=NIGHT_JD - 0.1, until_jd=NIGHT_JD + 1.0)
    t_end = time.perf_counter()
    import sqlite3

    db = sqlite3.connect(journal)
    precisions = dict(db.execute("SELECT coalesce(precision, 'none'), count(*) FROM alerts GROUP BY 1").fetchall())
    acted = db.execute("SELECT count(DISTINCT objectId) FROM decisions").fetchone()[0]
    db.close()
    rt.close()
    return {"backend": backend, "load_s": t_load, "decided_s": planned[-1] - t0, "cycle_s": t_end - t0,
            "new": report.n_new, "scored": report.n_scored, "chunks": report.n_chunks,
            "requests": report.kowalski_requests, "decisions": len(report.decisions), "sources_acted_on": acted,
            "precisions": precisions}


def run(backend: str, port: int, token: str, cache: Path, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "out.json"
        with open(out_path, "w") as fo, open(Path(tmp) / "err.txt", "w") as fe:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", backend, str(port), token,
                                     str(cache), str(Path(tmp) / "journal.sqlite")], env=env, stdout=fo, stderr=fe)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{backend} cycle failed: {(Path(tmp) / 'err.txt').read_text()[-2000:]}")
        return {**json.loads(out_path.read_text().splitlines()[-1]), "peak_mib": usage.ru_maxrss / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="new alerts in the night (default 2000)")
    ap.add_argument("--latency", type=float, default=0.02, help="added latency per request, s (default 0.02)")
    ap.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8"])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "btsbot-bench-cache",
                    help="model cache with the models pulled and converted (never downloaded here)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        backend, port, token, cache, journal = args.child
        print(json.dumps(child(backend, int(port), token, cache, journal)))
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    load0 = os.getloadavg()
    print(f"one cycle, dry-run, {args.n} new alerts, stand-in in a separate process, {args.latency * 1000:.0f} ms "
          f"latency/request, {os.cpu_count()} CPUs, load average {load0[0]:.2f}")
    print("| backend | poll -> last decision, s | whole cycle, s | peak RSS MiB | chunks | Kowalski requests "
          "| decisions (sources) | alerts by precision |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.backends:
        with served("kowalski", args.n, args.latency, 0.0, env) as night:  # a fresh night: every alert new
            r = run(backend, night.port, night.token, args.cache, env)
        assert r["new"] == args.n, r
        print(f"| {r['backend']} | {r['decided_s']:.1f} | {r['cycle_s']:.1f} | {r['peak_mib']:.0f} | {r['chunks']} "
              f"| {r['requests']} | {r['decisions']} ({r['sources_acted_on']}) | "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["precisions"].items())) + " |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
