"""Benchmark: peak RSS of `btsbot run --once` (ONNX backend, dry-run) over a night of N alerts.

The night is the one `bench_poll.py` synthesizes from the 36 real packets (6-7 alerts per object),
served by the Kowalski stand-in in a separate process; the bot runs as `python -m bot run --once` in a
child process whose peak resident set size is read from `os.wait4` (the stand-in is not counted).
Dry-run without a Fritz token: every decision and action is journaled, nothing is sent.

    python benchmarks/bench_memory.py                         # 2,000 alerts
    python benchmarks/bench_memory.py --sizes 2000 20000 --chunk 200 100000 --batch 256

`--chunk` lists the `kowalski.chunk_alerts` values to try (a value above N = one chunk, the behaviour
before chunking). The models are pulled once from the ../shared mirror into `--cache`.
Target: peak RSS < 500 MB for any window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_poll import NIGHT_JD, served  # noqa: E402


def ensure_models(cache: Path, env: dict) -> None:
    status = subprocess.run([sys.executable, "-m", "bot", "models", "status"], env=env, capture_output=True, text=True)
    if "missing" in status.stdout + status.stderr:
        subprocess.run([sys.executable, "-m", "bot", "models", "pull"], env=env, check=True,
                       stdout=subprocess.DEVNULL)


def run(n_alerts: int, chunk: int, cache: Path, env: dict, batch: int | None = None) -> dict:
    with served("kowalski", n_alerts, 0.0, 0.0, env) as night, tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(
            "mode: dry-run\n"
            f"kowalski: {{protocol: http, host: 127.0.0.1, port: {night.port}, token: {night.token}, chunk_alerts: {chunk},"
            " timeout_s: 120.0, max_time_ms: 100000}\n"
            "skyportal: {url: 'http://127.0.0.1:9', token: null}\n"
            f"state: {{path: {tmp}/journal.sqlite}}\n"
            f"models: {{cache_dir: {cache}, backend: onnx"
            + (f", batch_size: {batch}" if batch else "") + "}\n")
        t0 = time.perf_counter()
        out_path, err_path = Path(tmp) / "out.txt", Path(tmp) / "err.txt"
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            bot = subprocess.Popen([sys.executable, "-m", "bot", "run", "--once", "--config", str(cfg),
                                    "--since", str(NIGHT_JD - 0.1), "--until", str(NIGHT_JD + 1.0)],
                                   env=env, stdout=fo, stderr=fe)
            _, status, usage = os.wait4(bot.pid, 0)  # this child's own peak RSS
            bot.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out, err = out_path.read_text(), err_path.read_text()
    if bot.returncode != 0:
        raise RuntimeError(f"run --once failed ({bot.returncode}): {err[-2000:]}")
    summary = next((ln for ln in out.splitlines() if ln.startswith("window")), "")
    return {"alerts": n_alerts, "chunk": chunk, "peak_mb": usage.ru_maxrss / 1024, "seconds": seconds,
            "summary": summary}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000])
    ap.add_argument("--chunk", type=int, nargs="+", default=[200], help="kowalski.chunk_alerts values (default 200, the default)")
    ap.add_argument("--batch", type=int, default=None, help="models.batch_size (default: the defaults file's)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "btsbot-bench-cache")
    args = ap.parse_args(argv)
    env = {**os.environ, "BTSBOT_CACHE_DIR": str(args.cache),
           "BTSBOT_MODEL_MIRROR": f"{SHARED / 'models'}:{SHARED / 'example_data'}",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    ensure_models(args.cache, env)
    print(f"`run --once`, ONNX, dry-run, models.batch_size {args.batch or 'default'}, {os.cpu_count()} CPUs")
    print(f"{'alerts':>8} {'chunk':>7} {'peak RSS MB':>12} {'seconds':>8}")
    for n in args.sizes:
        for chunk in args.chunk:
            r = run(n, chunk, args.cache, env, args.batch)
            print(f"{r['alerts']:>8} {r['chunk']:>7} {r['peak_mb']:>12.0f} {r['seconds']:>8.1f}   {r['summary']}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
