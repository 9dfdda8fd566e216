"""`btsbot backtest`: its arguments and command (wired into bot/cli.py by `register`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    bt = subparsers.add_parser(
        "backtest", help="score an archive (or replay a journal) under trial policies, against labels",
        description="Which sources would these policies select, when, and with which completeness and purity? "
                    "Alerts from avro files (--alerts), a window polled from the alert broker (--broker: "
                    "Kowalski or BOOM, as the daemon polls it) or a journal (--journal); "
                    "scores are cached, so a second run or a sweep never rescores.")
    bt.add_argument("--config", metavar="FILE", help="the policies (and models, Kowalski, state.path) to use")
    add_sample_arguments(bt)
    bt.add_argument("--labels", metavar="FILE", help="CSV: objectId,label[,saved_at,triggered_at] or the BTS "
                                                     "Sample Explorer export (ZTFID, type)")
    bt.add_argument("--positive-types", default=None, metavar="REGEX",
                    help="Sample Explorer types labelled 1 (default ^SN: supernova classes)")
    bt.add_argument("--set", dest="sets", action="append", default=[], metavar="[POLICY.]KEY=VALUE",
                    help="override a policy threshold (min_score, min_alerts, alert_mag_max, peakmag_max, "
                         "age_min_days, age_max_days, model_version); repeatable")
    bt.add_argument("--sweep", dest="sweeps", action="append", default=[], metavar="[POLICY.]KEY=GRID",
                    help="try KEY=v1,v2,... or KEY=start:stop:step (min_score, min_alerts, alert_mag_max, "
                         "peakmag_max); repeatable (product)")
    bt.add_argument("--baseline", action="store_true", help="sources each trial gains/loses vs the config's policies")
    bt.add_argument("--compare", metavar="LAB.yaml",
                    help="a second config (lab) whose policies run over the same alerts and scores as --config's "
                         "(prod): per policy, the sources only one selects, decision-time changes, the metric changes")
    bt.add_argument("--compare-backend", metavar="BACKEND", choices=("onnx", "onnx-int8", "tensorflow"),
                    help="score the same alerts again with this backend (onnx-int8: the daemon's int8 rule) and "
                         "compare the trial policies' decisions (the config's, --set/--sweep applied) under both: "
                         "flips, time changes, the metric changes; with --alerts or --broker")
    bt.add_argument("--format", choices=("table", "json", "csv"), default="table",
                    help="table (default); json: JSON Lines, one object per trial policy; csv: one row per trial")
    bt.add_argument("--report", metavar="DIR", help="also write DIR/index.html with PNG plots")
    bt.set_defaults(func=cmd_backtest)
    return bt


def add_sample_arguments(parser) -> None:
    """Where the alerts come from and how they are scored: what `backtest` and `explain` (and any command
    over a sample, `load_sample`) take."""
    from bot.cli.common import _jd_arg

    src = parser.add_mutually_exclusive_group()
    src.add_argument("--alerts", nargs="+", metavar="PATH", help="avro packets (files or directories, recursively)")
    src.add_argument("--broker", nargs="?", const="config", choices=("config", "kowalski", "boom"),
                     metavar="kowalski|boom",
                     help="poll the --since/--until window from the alert broker: the config's `source:` "
                          "(default), or the one named")
    src.add_argument("--kowalski", dest="broker", action="store_const", const="kowalski",
                     help="the same as --broker kowalski (the old name)")
    src.add_argument("--journal", metavar="FILE", help="the alerts a journal holds (default: the config's state.path)")
    parser.add_argument("--since", type=_jd_arg, metavar="DATE|JD", help="from this date or JD")
    parser.add_argument("--until", type=_jd_arg, metavar="DATE|JD", help="before this date or JD")
    parser.add_argument("--cache-dir", metavar="DIR", help="model cache (default: models.cache_dir, $BTSBOT_CACHE_DIR)")
    parser.add_argument("--score-cache", metavar="FILE", help="score cache (default: scores.sqlite in the cache dir)")
    parser.add_argument("--no-score-cache", action="store_true", help="score everything, cache nothing")
    parser.add_argument("--backend", choices=("auto", "onnx", "onnx-int8", "tensorflow"),
                        help="default: models.backend (auto scores in fp32 here: scores are cached and compared; "
                             "onnx-int8: the daemon's rule, the int8 model with fp32 from the lowest min_score "
                             "minus models.int8_guard up)")
    parser.add_argument("--drb-source", choices=("braai", "alert"), help="default: models.drb_source")
    parser.add_argument("--batch-size", type=int, help="alerts per model call (default: models.batch_size)")
    parser.add_argument("--dask", metavar="local:N|tcp://HOST:PORT",
                        help="score the --alerts files on Dask: local:N starts N worker processes here, tcp://HOST:PORT "
                             "uses a running scheduler (each worker loads the models once; the paths may be fsspec URLs "
                             "the workers can read); the same scores and numbers as without (needs btsbot[dask])")


def _note(msg: str) -> None:
    print(f"btsbot: {msg}", file=sys.stderr)


def load_sample(args, cfg, spec=None):
    """The sample the arguments name (spec: a ScorerSpec, injected by tests and benchmarks)."""
    from bot.artifacts import cache_root
    from bot.backtest import sources
    from bot.backtest.cache import ScoreCache
    from bot.backtest.errors import BacktestError

    dask = getattr(args, "dask", None)
    if dask:
        from bot.backtest.distributed import DaskError, parse_spec
        from bot.cli.common import EXIT_USAGE

        if not args.alerts:
            raise DaskError("--dask scores alert files: it needs --alerts PATH…, not --broker or a journal", EXIT_USAGE)
        parse_spec(dask)
    if not args.alerts and not args.broker:
        path = Path(args.journal) if args.journal else cfg.journal_path
        if not path.exists():
            raise BacktestError(f"no journal at {path} (--alerts, --broker, --journal, or state.path in the config)")
        return sources.from_journal(path, args.since, args.until)
    spec = spec or sources.ScorerSpec.from_config(cfg, args.backend, args.cache_dir, args.drb_source, args.batch_size)
    cache = None
    if not args.no_score_cache:
        cache = ScoreCache(args.score_cache or cache_root(args.cache_dir or cfg.models.cache_dir) / "scores.sqlite")
    try:
        if args.broker:
            if args.since is None or args.until is None:
                raise BacktestError("--broker (--kowalski) needs --since and --until")
            source = None if args.broker == "config" else args.broker
            return sources.from_broker(cfg, spec, cache, args.since, args.until, source=source)
        if dask:
            from bot.backtest import distributed

            sample = distributed.from_files(args.alerts, spec, cache, dask)
        else:
            sample = sources.from_files(args.alerts, spec, cache)
        if args.since is not None or args.until is not None:
            lo = float("-inf") if args.since is None else args.since
            hi = float("inf") if args.until is None else args.until
            sample.alerts = [a for a in sample.alerts if lo <= a["jd"] < hi]
        return sample
    finally:
        if cache is not None:
            cache.close()


def cmd_backtest(args, spec=None, compare_spec=None) -> int:
    from bot.backtest import output
    from bot.backtest.sources import ScorerSpec
    from bot.backtest.labels import DEFAULT_POSITIVE_TYPES, LabelError, read_labels
    from bot.backtest.errors import BacktestError
    from bot.backtest.run import run_backtest
    from bot.backtest.trials import TrialError, baseline_trials, build_trials, config_policies
    from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, _load_config

    cfg = _load_config(args)
    base = config_policies(cfg)
    try:
        trials = build_trials(base, args.sets, args.sweeps)
    except TrialError as exc:
        return _die(str(exc), EXIT_USAGE)
    try:
        labels = read_labels(args.labels, args.positive_types or DEFAULT_POSITIVE_TYPES) if args.labels else None
        if not trials:
            raise BacktestError("no policy to try: the config has no policies (--config)")
        if args.compare and args.compare_backend:
            return _die("--compare and --compare-backend: one comparison at a time", EXIT_USAGE)
        if args.compare_backend and not (args.alerts or args.broker):
            return _die("--compare-backend scores the alerts again: it needs --alerts or --broker, not a journal",
                        EXIT_USAGE)
        mins = sorted({t.policy.min_score for t in trials} | {p.min_score for p, _ in base})  # int8's fp32 floor

        def scorer_spec(backend):
            return ScorerSpec.from_config(cfg, backend, args.cache_dir, args.drb_source, args.batch_size, mins)

        spec = spec or scorer_spec(args.backend)
        sample = load_sample(args, cfg, spec)
        reference = args.baseline or bool(args.sweeps)
        bt = run_backtest(sample, trials, labels, baseline_trials(base) if reference else None, compare=args.baseline)
        diffs = None
        if args.compare_backend:
            from bot.backtest.compare import compare_sets, precision_line

            other = load_sample(args, cfg, compare_spec or scorer_spec(args.compare_backend))
            diffs = compare_sets(bt, run_backtest(other, trials, labels))
            titles = (f"{spec.backend or 'the given scorer'} vs {args.compare_backend}", precision_line(sample, other))
        if args.compare:
            from bot.backtest.compare import compare_sets
            from bot.config import load_config

            lab = run_backtest(sample, baseline_trials(config_policies(load_config(args.compare))), labels)
            prod = bt if not (args.sets or args.sweeps) else run_backtest(sample, baseline_trials(base), labels)
            diffs = compare_sets(prod, lab)
            titles = ("prod vs lab", "the same alerts and scores")
    except (LabelError, BacktestError) as exc:
        return _die(str(exc), getattr(exc, "exit_code", EXIT_FAILED))
    if args.format == "table":
        output.write_table(bt, sys.stdout)
    else:
        for line in output.summary_lines(bt):  # what was excluded or unlabelled is never silent
            _note(line)
        (output.write_json if args.format == "json" else output.write_csv)(bt, sys.stdout)
    if diffs is not None:
        from bot.backtest import compare

        if args.format == "json":
            compare.write_json(bt, diffs, sys.stdout, *titles)
        else:
            compare.write_text(bt, diffs, sys.stdout if args.format == "table" else sys.stderr, *titles)
    if args.report:
        from bot.backtest.html import write_report

        _note(f"report: {write_report(bt, Path(args.report), diffs, titles if diffs is not None else None)}")
    return EXIT_OK

