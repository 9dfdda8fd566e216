"""The cost of the evidence commands over a cached archive: `btsbot check` (20 cases), `backtest --compare`
(two policy sets) and `backtest --compare-backend onnx-int8`, against one plain backtest of the same alerts.

    python benchmarks/bench_check.py [--sources 2000] [--per-source 10] [--cold 2000] [--cache-dir DIR]

The archive is `bench_backtest.py`'s (`--sources` synthetic sources of `--per-source` real packets each,
20,000 alerts by default). It is scored once into a score cache (timed); then, each as a process (start
and model load included), warm: a backtest of the config's policies, the same with `--compare LAB.yaml`
(a lab config with other thresholds), and `btsbot check` of 20 cases (10 that name 3 labelled-positive
sources each to be selected by bts_p1, 10 that name 3 negatives each that bts_p2 must not select; whether
they pass does not matter here). Last, over the first `--cold` alerts with their fp32 scores cached:
`--compare-backend onnx-int8` (the int8 scores are not cached: it scores them) against a cold fp32
backtest of the same alerts. Issue 15 asks for a check of 20 cases over 20,000 cached alerts in seconds,
and `--compare` at most twice one backtest. Prints a Markdown table and the CPU flags.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_backtest import build_archive  # noqa: E402

from bot.artifacts import cache_root  # noqa: E402
from bot.scoring.cpu import cpu_line  # noqa: E402

LAB = """policies:
  - {name: bts_p1, min_score: 0.6, min_alerts: 2, alert_mag_max: 19.0, actions: {save: {group_ids: [1001]}}}
  - {name: bts_p2, min_score: 0.5, min_alerts: 3, alert_mag_max: 19.0, peakmag_max: 18.5}
"""


def timed(cmd: list[str], ok=(0,)) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd[:4])}…: exit {proc.returncode}: {proc.stderr[-1500:]}")
    return time.perf_counter() - t


def cases(labels: Path, out: Path, seed: int = 2) -> Path:
    rows = list(csv.DictReader(open(labels)))
    pos = [r["objectId"] for r in rows if r["label"] == "1"]
    neg = [r["objectId"] for r in rows if r["label"] == "0"]
    rng = random.Random(seed)
    lines = ["cases:"]
    for i in range(10):
        lines.append(f"  - {{name: positives {i}, policy: bts_p1, select: [{', '.join(rng.sample(pos, 3))}]}}")
    for i in range(10):
        lines.append(f"  - {{name: negatives {i}, policy: bts_p2, reject: [{', '.join(rng.sample(neg, 3))}]}}")
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--per-source", type=int, default=10)
    ap.add_argument("--cold", type=int, default=2000)
    ap.add_argument("--cache-dir")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    cache = str(cache_root(args.cache_dir))
    bot = [sys.executable, "-m", "bot"]
    print(f"{cpu_line()}, load average {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="btsbot-bench-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "alerts"
        archive.mkdir()
        labels, n = build_archive(Path(args.shared), archive, args.sources, args.per_source)
        lab = tmp / "lab.yaml"
        lab.write_text(LAB)
        case_file = cases(labels, tmp / "cases.yaml")
        db = str(tmp / "scores.sqlite")
        common = ["--alerts", str(archive), "--cache-dir", cache, "--score-cache", db]
        bt = bot + ["backtest", *common, "--labels", str(labels), "--format", "json"]
        rows.append((f"cold backtest, {n:,} alerts (fills the score cache, fp32)", timed(bt)))
        one = timed(bt)
        rows.append((f"warm backtest, {n:,} alerts, the config's 2 policies", one))
        rows.append((f"warm backtest --compare LAB.yaml, {n:,} alerts (2 + 2 policies)", timed(bt + ["--compare", str(lab)])))
        rows.append((f"warm check, 20 cases over {n:,} alerts", timed(bot + ["check", "--cases", str(case_file), *common],
                                                                    ok=(0, 1))))
        files = [str(p) for p in sorted(archive.iterdir())[: max(1, args.cold // args.per_source)]]
        m = len(files) * args.per_source
        cold = ["--alerts", *files, "--cache-dir", cache, "--labels", str(labels), "--format", "json"]
        rows.append((f"cold backtest, {m:,} alerts, fp32", timed(bot + ["backtest", *cold, "--score-cache", str(tmp / "c.sqlite")])))
        rows.append((f"backtest --compare-backend onnx-int8, {m:,} alerts (fp32 cached, int8 scored)",
                     timed(bot + ["backtest", *cold, "--score-cache", str(tmp / "c.sqlite"), "--compare-backend", "onnx-int8"])))
    print("\n| run (process start included) | seconds |\n|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
