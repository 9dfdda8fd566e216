"""`btsbot backtest` cost on this machine: cold (scoring) vs `btsbot score`, warm (cached) sweeps.

    python benchmarks/bench_backtest.py [--sources 2000] [--per-source 10] [--cold 2000] [--cache-dir DIR]

The archive: `--sources` synthetic sources of `--per-source` alerts each, written as avro files (one
file per source, the real packets' own schema), each alert a copy of one of the 36 real packets in
../shared/alerts/ztf (cutouts and prv_candidates as they are) with a new objectId and candid, its jd
(and its history's) shifted to make one light curve per source, and its magnitudes (and its history's)
shifted by a per-source offset so peaks spread over 16.5-19.5 mag. The labels are random (seeded),
with saved/triggered times around each source's second alert.

1. cold: `btsbot backtest` over the first `--cold` alerts' files with an empty score cache, against
   `btsbot score` over the same files (both as processes, model load included);
2. the whole archive is scored once into the score cache (a cold run, timed too);
3. warm: `btsbot backtest --sweep min_score=...` with 10, 50 and 200 grid points (both config
   policies swept: 2x as many trial policies), process start included.
Models must be pulled first (`btsbot models pull`). Prints Markdown tables for the README.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.artifacts import cache_root  # noqa: E402

SWEEPS = {10: "min_score=0.05:0.95:0.1", 50: "min_score=0.01:0.99:0.02", 200: "min_score=0.005:0.9999:0.005"}


def _letters(i: int, n: int = 7) -> str:
    s = ""
    for _ in range(n):
        i, r = divmod(i, 26)
        s = chr(97 + r) + s
    return s


def _shift(packet: dict, oid: str, candid: int, djd: float, dmag: float) -> dict:
    p = copy.copy(packet)
    p["objectId"], p["candid"] = oid, candid
    cand = dict(p["candidate"], candid=candid)
    for d in [cand] + (prv := [dict(x) for x in (p.get("prv_candidates") or [])]):
        d["jd"] = d["jd"] + djd
        if d.get("jdstarthist") is not None:
            d["jdstarthist"] += djd
        for k in ("magpsf", "magap"):
            if d.get(k) is not None:
                d[k] = d[k] + dmag
    for d in prv:
        if d.get("candid") is not None:
            d["candid"] = d["candid"] + 7
    p["candidate"], p["prv_candidates"] = cand, prv or None
    return p


def build_archive(shared: Path, out: Path, n_sources: int, per_source: int, seed: int = 1) -> tuple[Path, int]:
    """Write the archive and its labels; returns (labels path, alerts written)."""
    real = []
    for path in sorted((shared / "alerts" / "ztf").rglob("*.avro")):
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            real += [(reader.writer_schema, a) for a in reader]
    rng = random.Random(seed)
    lines = ["objectId,label,saved_at,triggered_at"]
    n = 0
    for s in range(n_sources):
        schema, template = real[s % len(real)]
        oid = f"ZTF24{_letters(s)}"
        dmag = rng.uniform(16.5, 19.5) - template["candidate"]["magpsf"]
        t0 = 2460400.0 + s * 0.001
        records = []
        for k in range(per_source):
            n += 1
            djd = t0 + 0.7 * k - template["candidate"]["jd"]
            rec = _shift(template, oid, 3_000_000_000_000_000_000 + s * 1000 + k, djd, dmag + rng.gauss(0, 0.05))
            records.append(rec)
        with open(out / f"{oid}.avro", "wb") as fh:
            fastavro.writer(fh, schema, records)
        saved = t0 + 0.7 + rng.uniform(-0.2, 0.5)
        lines.append(f"{oid},{int(rng.random() < 0.7)},{saved:.5f},{saved + rng.uniform(0, 0.3):.5f}")
    labels = out.parent / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels, n


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--per-source", type=int, default=10)
    ap.add_argument("--cold", type=int, default=2000, help="alerts of the cold comparison with btsbot score")
    ap.add_argument("--cache-dir")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    cache = str(cache_root(args.cache_dir))
    bt = [sys.executable, "-m", "bot", "backtest", "--cache-dir", cache]
    with tempfile.TemporaryDirectory(prefix="btsbot-bench-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "alerts"
        archive.mkdir()
        t = time.perf_counter()
        labels, n = build_archive(Path(args.shared), archive, args.sources, args.per_source)
        print(f"archive: {n} alerts of {args.sources} sources in {args.sources} files, "
              f"{sum(f.stat().st_size for f in archive.iterdir()) / 2**20:,.0f} MiB, built in {time.perf_counter() - t:.0f} s")
        files = sorted(archive.iterdir())[: max(1, args.cold // args.per_source)]
        cold_n = len(files) * args.per_source
        rows = []
        t_score = run([sys.executable, "-m", "bot", "score", *map(str, files), "--cache-dir", cache, "--progress", "off",
                       "-o", str(tmp / "scores.csv")])
        t_cold = run(bt + ["--alerts", *map(str, files), "--labels", str(labels), "--format", "json",
                           "--score-cache", str(tmp / "cold.sqlite")])
        rows.append((f"`btsbot score`, {cold_n} alerts (process start included)", f"{t_score:.1f}", f"{cold_n / t_score:,.0f}"))
        rows.append((f"cold `btsbot backtest`, {cold_n} alerts, empty score cache", f"{t_cold:.1f}", f"{cold_n / t_cold:,.0f}"))
        cache_db = str(tmp / "warm.sqlite")
        t_fill = run(bt + ["--alerts", str(archive), "--labels", str(labels), "--format", "json", "--score-cache", cache_db])
        rows.append((f"cold `btsbot backtest`, all {n} alerts (fills the cache)", f"{t_fill:.1f}", f"{n / t_fill:,.0f}"))
        for points, grid in SWEEPS.items():
            dt = run(bt + ["--alerts", str(archive), "--labels", str(labels), "--sweep", grid, "--format", "json",
                           "--score-cache", cache_db])
            rows.append((f"warm, {n} alerts, {points}-point sweep ({2 * points} trial policies)", f"{dt:.1f}",
                         f"{n / dt:,.0f}"))
        dt = run(bt + ["--alerts", str(archive), "--labels", str(labels), "--sweep", SWEEPS[50], "--report",
                       str(tmp / "report"), "--format", "json", "--score-cache", cache_db])
        rows.append((f"warm, {n} alerts, 50-point sweep + --report (plots)", f"{dt:.1f}", f"{n / dt:,.0f}"))
    print(f"\n{os.cpu_count()} cores; load average before/after: see `uptime`\n")
    print("| run | seconds | alerts/s |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
