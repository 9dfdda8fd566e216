"""Scoring throughput on this machine: preprocessing, the model, end to end, cold start, peak memory.

    python benchmarks/bench_score.py [--n 2000] [--cache-dir DIR] [--shared ../shared]

Inputs are the 36 real alerts in ../shared/alerts/ztf, replicated with new candids to --n files.
Models must be pulled first (`btsbot models pull`). Prints a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.alert_files import iter_alert_files  # noqa: E402
from bot.artifacts import cache_root  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.core.features import feature_matrix, packet_history  # noqa: E402
from bot.core.triplets import make_triplets  # noqa: E402
from bot.scoring.backends import load_backends  # noqa: E402


def rate(n, seconds):
    return f"{n / seconds:,.0f}"


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_measured(cmd) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MiB) of one child process.

    The child is started by a small intermediate (GNU time, or a fresh python) so that its peak RSS is
    its own, not the copy of this process' memory a direct fork would count.
    """
    with tempfile.NamedTemporaryFile("r") as rss_file:
        if shutil.which("time") or Path("/usr/bin/time").exists():
            wrapper = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name]
        else:
            wrapper = [sys.executable, "-c", "import os,resource,subprocess,sys; subprocess.run(sys.argv[2:], check=True);"
                       "open(sys.argv[1],'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))",
                       rss_file.name]
        t = time.perf_counter()
        subprocess.run(wrapper + cmd, check=True, cwd=REPO)
        dt = time.perf_counter() - t
        return dt, int(rss_file.read().split()[-1]) / 1024


def int8_fidelity(fp32_csv: Path, int8_csv: Path) -> str:
    """max |int8 - fp32| of the int8 model itself and the fraction the guard re-scored in fp32."""
    import csv

    from bot.config import load_config
    from bot.scoring.scorer import Scorer

    a = {r["source"]: r for r in csv.DictReader(open(fp32_csv))}
    b = list(csv.DictReader(open(int8_csv)))
    rescored = sum(r["precision"] == "fp32" for r in b)
    diff = max(abs(float(r["score"]) - float(a[r["source"]]["score"])) for r in b)
    cfg = load_config(None)
    return (f"onnx-int8 `btsbot score`: {rescored}/{len(b)} alerts ({rescored / len(b):.1%}) re-scored in fp32 "
            f"(guard {cfg.models.int8_guard}, fp32 from {Scorer(None, None, guard=cfg.models.int8_guard, thresholds=[p.min_score for p in cfg.policies]).fp32_floor:g} up); "
            f"max |score - fp32| of the guarded output {diff:.2e}")


def replicate(alerts, n):
    out = []
    for i in range(n):
        a = copy.copy(alerts[i % len(alerts)])
        a["candid"] = a["candid"] + 10**6 * (i // len(alerts) + 1)
        out.append(a)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--cache-dir")
    ap.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8", "tensorflow"],
                    help="onnx and onnx-int8 are always compared side by side")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    args = ap.parse_args()
    cache = cache_root(args.cache_dir)
    src = Path(args.shared) / "alerts" / "ztf"
    files = [f for f in iter_alert_files([src])]
    alerts = [a for f in files for a in f.alerts]
    batch = replicate(alerts, args.n)
    rows = []
    load0 = os.getloadavg()
    preds = {}

    raw_files = [Path(f.path).read_bytes() for f in files]
    reps = max(1, args.n // len(raw_files))
    t_avro = timed(lambda: [list(fastavro.reader(io.BytesIO(b))) for _ in range(reps) for b in raw_files], 1)
    rows.append(("avro decode (fastavro, from bytes)", "-", "-", rate(reps * len(raw_files), t_avro)))
    t_trip = timed(lambda: make_triplets(batch), 1)
    triplets, _ = make_triplets(batch)
    hists = [packet_history(a) for a in batch]
    cands = [a["candidate"] for a in batch]
    t_feat = timed(lambda: feature_matrix(cands, hists, [0.9] * len(batch)), 1)
    feats, _ = feature_matrix(cands, hists, [0.9] * len(batch))
    rows.append(("decode + triplets (gunzip, FITS, mask, norm)", "-", "-", rate(len(batch), t_trip)))
    rows.append(("features (25, history-derived)", "-", "-", rate(len(batch), t_feat)))

    backends = list(dict.fromkeys(["onnx", "onnx-int8", *args.backends]))
    for backend in backends:
        loaded = load_backends(backend, cache)
        model, braai = loaded.model, loaded.braai
        if backend != "tensorflow":
            preds[backend] = model.predict(triplets[: len(alerts)], feats[: len(alerts)])
        t_braai = timed(lambda: [braai.predict(triplets[i : i + 256]) for i in range(0, len(batch), 256)], 1)
        rows.append(("braai (new_drb), batch 256", backend, "256", rate(len(batch), t_braai)))
        rows.append(("preprocessing total (triplets + features + braai)", backend, "256",
                     rate(len(batch), t_trip + t_feat + t_braai)))
        for bs in (1, 64, 512):
            m = min(len(batch), 256 if bs == 1 else len(batch))
            model.predict(triplets[:bs], feats[:bs].astype(np.float32))  # warm-up
            t = timed(lambda: [model.predict(triplets[i : i + bs], feats[i : i + bs]) for i in range(0, m, bs)], 2)
            rows.append(("BTSbot model alone", backend, str(bs), rate(m, t)))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the real files, copied n/36 times under new names (their content is read as is)
        raw = [(f.path, Path(f.path).read_bytes()) for f in files]
        for i in range(args.n):
            path, data = raw[i % len(raw)]
            (tmp / f"{i:05d}_{Path(path).name}").write_bytes(data)
        for backend in backends:
            cmd = [sys.executable, "-m", "bot", "score", str(tmp), "--backend", backend, "--progress", "off",
                   "-o", str(tmp.parent / f"out-{backend}.csv")] + (["--cache-dir", str(cache)])
            dt, rss = run_measured(cmd)
            rows.append((f"end to end `btsbot score` over {args.n} files (process start included; "
                         f"peak RSS {rss:,.0f} MiB)", backend, str(load_config().models.batch_size), rate(args.n, dt)))
        one = str(tmp / sorted(os.listdir(tmp))[0])
        colds = [run_measured([sys.executable, "-m", "bot", "score", one, "--cache-dir", str(cache), "-o", os.devnull])
                 for _ in range(3)]
        cold, rss = min(colds)
        rows.append((f"cold start: `btsbot score` on one alert (peak RSS {rss:,.0f} MiB)", "onnx", "-", f"{cold:.2f} s"))
        fidelity = int8_fidelity(tmp.parent / "out-onnx.csv", tmp.parent / "out-onnx-int8.csv")
    print(f"\n{len(batch)} alerts, {os.cpu_count()} cores, load average before/after: {load0} / {os.getloadavg()}\n")
    print(fidelity)
    print(f"int8 model alone over the {len(alerts)} real alerts: max |int8 - fp32| "
          f"{np.abs(preds['onnx'] - preds['onnx-int8']).max():.4f}")
    print("| stage | backend | batch | alerts/s |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"peak RSS of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
