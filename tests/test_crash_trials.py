"""SIGKILL at random points of a live `run --once` over the demo night; restarts lose and repeat nothing.

20 trials (about 1-2 min); `benchmarks/bench_crash.py` runs hundreds with the same checks.
"""

import importlib.util
import random
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_crash", Path(__file__).parents[1] / "benchmarks" / "bench_crash.py")
bench_crash = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_crash)

RNG = random.Random(7)
KILL_TIMES = [RNG.uniform(0.3, 3.0) for _ in range(20)]  # an unkilled run takes ~2 s here


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_s", KILL_TIMES, ids=[f"kill@{t:.2f}s" for t in KILL_TIMES])
def test_sigkill_then_restart(example_kowalski, model_cache, tmp_path, kill_after_s):
    result = bench_crash.trial(example_kowalski, model_cache, kill_after_s, tmp_path)
    assert {c: result[c] for c in bench_crash.CHECKS} == dict.fromkeys(bench_crash.CHECKS, True), result
