"""`btsbot backtest --dask` on this machine: one process vs a LocalCluster of 1 and of 2 workers.

    python benchmarks/bench_dask.py [--sources 200] [--per-source 10] [--repeat 1] [--cache-dir DIR]

The archive is bench_backtest.py's (one avro file per synthetic source, each alert a real packet of
../shared/alerts/ztf with a new objectId/candid). Each run is a `btsbot backtest --alerts ARCHIVE` process
with an empty score cache (process start, cluster start and model loads included), fp32; the runs' JSON
outputs and score caches are compared (they must be identical). "scoring alerts/s" is the rate the last
progress line reports: from the first task submitted to the last partition back, without the process and
cluster start. Models must be pulled first (`btsbot models pull`).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_backtest import build_archive  # noqa: E402

from bot.artifacts import cache_root  # noqa: E402
from bot.scoring.cpu import cpu_line  # noqa: E402


def run(cmd: list[str]) -> tuple[float, str, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return dt, done.stdout, done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=200)
    ap.add_argument("--per-source", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each setting (the fastest is shown)")
    ap.add_argument("--cache-dir")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    print(cpu_line())
    load0 = os.getloadavg()
    settings = [("one process", []), ("--dask local:1", ["--dask", "local:1"]), ("--dask local:2", ["--dask", "local:2"])]
    rows, outputs, caches = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="btsbot-bench-dask-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "alerts"
        archive.mkdir()
        labels, n = build_archive(Path(args.shared), archive, args.sources, args.per_source)
        print(f"archive: {n:,} alerts in {args.sources:,} files, "
              f"{sum(f.stat().st_size for f in archive.iterdir()) / 2**20:,.0f} MiB")
        for rep in range(args.repeat):
            for name, extra in settings:
                db = tmp / f"scores-{rep}-{len(rows)}.sqlite"
                cmd = [sys.executable, "-m", "bot", "backtest", "--alerts", str(archive), "--labels", str(labels),
                       "--cache-dir", str(cache_root(args.cache_dir)), "--score-cache", str(db), "--backend", "onnx",
                       "--format", "json", *extra]
                dt, out, err = run(cmd)
                rates = re.findall(r"alerts scored, ([\d,]+) alerts/s", err)
                rows.append((name, dt, rates[-1] if rates else "-"))
                outputs.setdefault(name, out)
                with sqlite3.connect(db) as conn:
                    caches.setdefault(name, conn.execute("SELECT * FROM scores ORDER BY candid").fetchall())
    best = {}
    for name, dt, rate in rows:
        if name not in best or dt < best[name][0]:
            best[name] = (dt, rate)
    same = all(outputs[k] == outputs["one process"] and caches[k] == caches["one process"] for k in outputs)
    print(f"load average before/after: {load0[0]:.2f} / {os.getloadavg()[0]:.2f}; outputs and score caches "
          f"identical to the single process: {'yes' if same else 'NO'} ({len(caches['one process']):,} scores)\n")
    print(f"| run ({n:,} alerts, cold score cache, fp32) | seconds | alerts/s end to end | scoring alerts/s |")
    print("|---|---|---|---|")
    for name, (dt, rate) in best.items():
        print(f"| {name} | {dt:.1f} | {n / dt:,.0f} | {rate} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
