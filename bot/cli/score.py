"""`btsbot score ALERTS...`: score avro packets on disk, one row per alert."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import Counter
from pathlib import Path

from bot.text import n
from bot.cli.common import EXIT_FAILED, EXIT_OK, _load_config, common


def register(sub) -> None:
    score = sub.add_parser("score", help="score alert packets (.avro files and/or directories) on disk")
    common(score)
    score.add_argument("alerts", nargs="+", metavar="ALERTS", help=".avro files and/or directories (searched recursively)")
    score.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json (JSON lines)")
    score.add_argument("--backend", choices=("auto", "onnx", "onnx-int8", "tensorflow"),
                       help="default: models.backend; auto is the fp32 model here (exact scores), onnx-int8 for speed")
    score.add_argument("--drb-source", choices=("braai", "alert"), help="default: models.drb_source (braai)")
    score.add_argument("--batch-size", type=int, help="alerts per model call (default: models.batch_size)")
    score.add_argument("--chunk", type=int, default=128, help="files read ahead while the previous chunk is scored (bounds memory)")
    score.add_argument("--output", "-o", metavar="FILE", help="write rows here instead of stdout")
    score.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                       help="progress bar on stderr (auto: on a terminal, for 50+ files)")
    score.set_defaults(func=cmd_score)


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def cmd_score(args) -> int:
    from bot.alert_files import find_alert_files
    from bot.scoring.files import COLUMNS, score_paths
    from bot.scoring.scorer import build_scorer

    problems = _missing_inputs(args.alerts)
    for problem in problems:
        print(f"btsbot: {problem}", file=sys.stderr)
    cfg = _load_config(args)
    files = list(find_alert_files(args.alerts))
    if not files:
        return EXIT_FAILED
    scorer = build_scorer(cfg, args.backend, args.cache_dir, args.drb_source, args.batch_size, for_scores=True)
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    counts = Counter()
    try:
        progress = _progress(len(files), args.progress)
        writer = None
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
        for row in score_paths(scorer, files, chunk=args.chunk, on_file=progress.update):
            d = row.as_dict()
            counts[d["status"].split(":", 1)[0]] += 1
            if writer:
                writer.writerow({k: _fmt(v) for k, v in d.items()})
            else:
                out.write(json.dumps(d) + "\n")
        progress.close()
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"btsbot score: {n(sum(counts.values()), 'alert')} from {n(len(files), 'file')}: {counts['ok']} ok, "
          f"{counts['unscorable']} unscorable, {counts['unreadable']} unreadable", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def _missing_inputs(inputs) -> list[str]:
    """Inputs that name nothing to score: a path that does not exist, a directory without .avro files."""
    out = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            out.append(f"{item}: no such file or directory")
        elif p.is_dir() and not any(f.is_file() for f in p.rglob("*.avro")):
            out.append(f"{item}: no .avro file in this directory")
    return out


def _progress(total: int, mode: str):
    from tqdm import tqdm

    disable = {"auto": None, "on": False, "off": True}[mode]
    if mode == "auto" and total < 50:
        disable = True
    return tqdm(total=total, unit="file", file=sys.stderr, disable=disable, dynamic_ncols=True)
