"""`btsbot explain OBJECT` on a source with 50 alerts, scores from the journal, as a process (start included).

    python benchmarks/bench_explain.py [--alerts 50] [--runs 5]

Target (issue 16): under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.journal import Journal  # noqa: E402
from bot.scoring.cpu import cpu_line  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite"
        with Journal(path) as j:
            j.record_alerts([{"candid": 2_460_000_000_000_000_000 + k, "objectId": "ZTF24abcdefg",
                              "jd": 2460600.7 + k * 0.3, "score": 0.3 + 0.6 * (k % 3 == 0), "status": "ok",
                              "magpsf": 18.9 - 0.02 * k, "peakmag_so_far": 18.9 - 0.02 * k, "age": 0.3 * k, "drb": 0.99,
                              "model_version": "v1.0.1", "source": "kowalski", "broker_score": 0.5,
                              "extra": {"ra": 1.0, "dec": 2.0, "fid": 1 + k % 2}} for k in range(args.alerts)])
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "bot", "explain", "ZTF24abcdefg", "--journal", str(path)],
                                 capture_output=True, text=True, cwd=REPO)
            times.append(time.perf_counter() - t0)
            assert out.returncode == 0, out.stderr
        print(cpu_line())
        print(f"btsbot explain, {args.alerts} alerts, {args.runs} runs: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}); {len(out.stdout.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
