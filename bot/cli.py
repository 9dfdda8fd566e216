"""The `btsbot` command line. Thin: each subcommand parses its arguments and calls the package."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import threading
from collections import Counter
from pathlib import Path

from bot import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_PENDING, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done (run --once: the cycle committed and no action is left pending; also after SIGTERM/SIGINT)
  {EXIT_FAILED}  failed (run --once: the cycle failed, e.g. Kowalski or Fritz unreachable; nothing of it committed)
  {EXIT_USAGE}  usage or configuration error (bad option or key, missing credentials, unusable state.path)
  {EXIT_MODEL}  model missing or corrupt (run `btsbot models pull`)
  {EXIT_PENDING}  run --once: the cycle committed but actions remain pending (resumed by the next run)
  {EXIT_LOCKED}  another btsbot writer holds the journal (state.path)"""


def _die(msg: str, code: int) -> int:
    print(f"btsbot: {msg}", file=sys.stderr)
    return code


def _load_config(args):
    from bot.config import load_config

    return load_config(getattr(args, "config", None))


def _cache(args, cfg=None):
    from bot.artifacts import cache_root

    return cache_root(getattr(args, "cache_dir", None) or (cfg.models.cache_dir if cfg else None))


# --- models -------------------------------------------------------------------------------------------


def cmd_models_pull(args) -> int:
    from bot.artifacts import load_manifest, pull
    from bot.scoring.backends import convert_to_onnx

    cfg = _load_config(args)
    cache = _cache(args, cfg)
    groups = ["models"] + ([] if args.no_example_data else ["example_data"])
    arts = [a for g in groups for a in load_manifest(g)]
    pull(arts, cache, sources=args.sources, allow_url=not args.offline, force=args.force, log=print)
    if not args.no_convert:
        convert_to_onnx(cache, force=args.force, log=print)
    print(f"cache: {cache}")
    return EXIT_OK


def cmd_models_convert(args) -> int:
    from bot.scoring.backends import convert_to_onnx

    convert_to_onnx(_cache(args, _load_config(args)), force=args.force, log=print)
    return EXIT_OK


def cmd_models_status(args) -> int:
    from bot.artifacts import ArtifactError, installed_path, load_manifest

    cache = _cache(args, _load_config(args))
    missing = 0
    for group in ("models", "example_data"):
        for art in load_manifest(group):
            try:
                print(f"ok       {art.label}: {installed_path(art, cache)}")
            except ArtifactError as exc:
                missing += 1
                print(f"missing  {exc}")
    return EXIT_OK if not missing else EXIT_FAILED


# --- score --------------------------------------------------------------------------------------------


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
    scorer = build_scorer(cfg, args.backend, args.cache_dir, args.drb_source, args.batch_size)
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
    print(f"btsbot score: {sum(counts.values())} alerts from {len(files)} files: {counts['ok']} ok, "
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


# --- run / journal ------------------------------------------------------------------------------------


def _jd_arg(text: str) -> float:
    from bot.timeutil import parse_cli_time

    try:
        return parse_cli_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_window(args) -> None:
    from bot.config import ConfigError
    from bot.timeutil import check_window

    try:
        check_window(args.since, args.until)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def cmd_run(args) -> int:
    from bot.config import ConfigError
    from bot.daemon import install_stop_handlers, run_daemon
    from bot.runtime import open_runtime

    cfg = _load_config(args)
    if args.mode:
        cfg.mode = args.mode
    _check_window(args)
    stop = threading.Event()
    install_stop_handlers(stop)
    if not args.once:
        if args.until is not None:
            raise ConfigError("--until is for run --once; the daemon polls up to now")
        return run_daemon(cfg, stop=stop, since_jd=args.since, hard_exit=True)
    rt = open_runtime(cfg, stop=stop)
    try:
        return _run_once(rt, args, stop)
    finally:
        rt.close()


def _run_once(rt, args, stop: threading.Event) -> int:
    """One cycle in a worker thread, so that a stop signal is obeyed within the grace period."""
    from bot.cycle import run_cycle
    from bot.daemon import GRACE_S, describe_failure, summary_log
    from bot.logs import verbose

    if stop.is_set():
        return EXIT_OK
    result: dict = {}
    done = threading.Event()

    def work():
        try:
            result["report"] = run_cycle(rt, since_jd=args.since, until_jd=args.until, stop=stop)
        except Exception as exc:  # reported below, in the main thread
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="btsbot-cycle", daemon=True).start()
    while not done.wait(0.25) and not stop.is_set():
        pass
    if not done.wait(GRACE_S if stop.is_set() else None):
        print("btsbot: stopped; the request in flight did not finish in time and stays pending", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_OK)
    if "error" in result:
        exc = result["error"]
        if verbose():
            logging.getLogger("bot.cli").error("cycle failed", exc_info=exc)
        return _die(f"cycle failed: {describe_failure(exc)}", EXIT_FAILED)
    report = result["report"]
    print(f"btsbot {rt.config.mode}: " + "\n".join(report.lines()))
    summary_log.info(report.summary())
    pending = len(rt.journal.unfinished_actions())
    if stop.is_set():
        print(f"btsbot: stopped; {pending} actions left pending for the next run", file=sys.stderr)
        return EXIT_OK
    if pending:
        print(f"btsbot: {pending} actions remain pending (Fritz failed or unreachable?); the next run resumes them",
              file=sys.stderr)
        return EXIT_PENDING
    return EXIT_OK


def _existing_journal(args, cfg=None) -> Path | None:
    """The journal `--journal` or the config's state.path names; None (after saying so) if it is absent."""
    path = Path(args.journal) if getattr(args, "journal", None) else (cfg or _load_config(args)).journal_path
    if not path.exists():
        _die(f"no journal at {path} (--journal, or state.path in the config)", EXIT_FAILED)
        return None
    return path


def cmd_journal(args) -> int:
    from bot.journal import Journal

    path = _existing_journal(args)
    if path is None:
        return EXIT_FAILED
    _check_window(args)
    with Journal(path) as journal:
        rows = journal.history(object_id=_object_id(args.object), since_jd=args.since, until_jd=args.until,
                               kind=args.kind, limit=args.limit)
    if args.format == "json":
        for row in rows:
            print(json.dumps(row, default=str))
        return EXIT_OK
    cols = ("time", "kind", "objectId", "candid", "alert_utc", "magpsf", "score", "status", "policy", "action",
            "outcome")
    table = [[_cell(v) for v in _journal_row(r)] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    return EXIT_OK


def _object_id(text: str | None) -> str | None:
    from bot.ids import normalize_object_id

    return normalize_object_id(text)


def _journal_row(r: dict) -> list:
    """One table row: the alert's (or the decision's alert's) UTC time, magpsf and score."""
    from bot.timeutil import jd_to_datetime

    ev = r.get("evidence") or {}
    magpsf = r.get("magpsf") if r["kind"] == "alert" else ev.get("magpsf")
    score = r.get("score") if r["kind"] == "alert" else ev.get("score")
    utc = f"{jd_to_datetime(r['jd']):%Y-%m-%d %H:%M:%S}" if r.get("jd") else None
    status = r.get("status")
    return [r.get("time"), r["kind"], r.get("objectId"), r.get("candid"), utc, magpsf, score, status,
            r.get("policy"), r.get("action"), r.get("outcome")]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}" if value > 1000 else f"{value:.4g}"
    return str(value)


def cmd_demo(args) -> int:
    from bot.demo import demo_cli

    demo_cli(args.cache_dir, step_hours=args.step_hours, until=args.until, journal=args.journal, fmt=args.format,
             source=args.source)
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="btsbot", description="Autonomous scanner of the ZTF Bright Transient Survey.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"btsbot {__version__}")
    _logging_options(p, argparse.SUPPRESS)
    p.set_defaults(verbose=0, log_format="text", log_file=None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, config=True):
        if config:
            sp.add_argument("--config", metavar="FILE", help="YAML config merged over config/config.defaults.yaml")
        sp.add_argument("--cache-dir", metavar="DIR", help="model cache (default: models.cache_dir, $BTSBOT_CACHE_DIR, ~/.cache/btsbot)")

    def jd_window(sp, since_help="from this time", until_help="before this time"):
        sp.add_argument("--since", type=_jd_arg, metavar="TIME", help=since_help + TIME_HELP)
        sp.add_argument("--until", type=_jd_arg, metavar="TIME", help=until_help + TIME_HELP)

    models = sub.add_parser("models", help="fetch, verify and convert the model artifacts")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pull = msub.add_parser("pull", help="fetch + verify the BTSbot model, braai and the example data; convert to ONNX")
    common(pull)
    pull.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                      help="a directory holding the artifacts (checked before $BTSBOT_MODEL_MIRROR and the URLs)")
    pull.add_argument("--force", action="store_true", help="fetch and convert again even if installed")
    pull.add_argument("--offline", action="store_true", help="never download; use --from / $BTSBOT_MODEL_MIRROR only")
    pull.add_argument("--no-convert", action="store_true", help="skip the ONNX conversion")
    pull.add_argument("--no-example-data", action="store_true", help="models only")
    pull.set_defaults(func=cmd_models_pull)
    conv = msub.add_parser("convert", help="convert the installed models to ONNX (tf2onnx), cached beside them")
    common(conv)
    conv.add_argument("--force", action="store_true")
    conv.set_defaults(func=cmd_models_convert)
    status = msub.add_parser("status", help="which artifacts are installed")
    common(status)
    status.set_defaults(func=cmd_models_status)

    score = sub.add_parser("score", help="score alert packets (.avro files and/or directories) on disk")
    common(score)
    score.add_argument("alerts", nargs="+", metavar="ALERTS", help=".avro files and/or directories (searched recursively)")
    score.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json (JSON lines)")
    score.add_argument("--backend", choices=("onnx", "onnx-int8", "tensorflow"), help="default: models.backend (onnx)")
    score.add_argument("--drb-source", choices=("braai", "alert"), help="default: models.drb_source (braai)")
    score.add_argument("--batch-size", type=int, help="alerts per model call (default: models.batch_size)")
    score.add_argument("--chunk", type=int, default=128, help="files read ahead while the previous chunk is scored (bounds memory)")
    score.add_argument("--output", "-o", metavar="FILE", help="write rows here instead of stdout")
    score.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                       help="progress bar on stderr (auto: on a terminal, for 50+ files)")
    score.set_defaults(func=cmd_score)

    run = sub.add_parser("run", help="run the bot: poll Kowalski, score, apply the policies, act on Fritz",
                         epilog=RUN_EPILOG + "\n\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", metavar="FILE", help="YAML config merged over config/config.defaults.yaml")
    run.add_argument("--once", action="store_true", help="run exactly one cycle and exit (default: the daemon)")
    jd_window(run, "start of the window (default: the last committed poll minus the overlap); with the daemon, "
                   "its first cycle starts here and catches up to now",
              "end of the window, run --once only (default: now)")
    run.add_argument("--mode", choices=("dry-run", "live"), help="override the config's mode")
    run.set_defaults(func=cmd_run)

    journal = sub.add_parser("journal", help="show what the bot did: alerts, decisions, actions")
    journal.add_argument("--config", metavar="FILE", help="the config whose state.path is the journal")
    journal.add_argument("--journal", metavar="FILE", help="the journal to read (default: the config's state.path)")
    journal.add_argument("--object", metavar="ZTF...", help="one source (case-insensitive)")
    jd_window(journal)
    journal.add_argument("--kind", choices=("all", "alerts", "decisions", "actions"), default="all")
    journal.add_argument("--limit", type=int, help="the most recent N rows")
    journal.add_argument("--format", choices=("table", "json"), default="table")
    journal.set_defaults(func=cmd_journal)

    from bot.backtest.cli import register as register_backtest
    from bot.report.cli import register as register_report
    from bot.report.explain import register as register_explain

    register_backtest(sub)
    register_report(sub)
    register_explain(sub)

    demo = sub.add_parser("demo", help="replay the night of SN 2023tyk against local Kowalski and SkyPortal stand-ins")
    demo.add_argument("--cache-dir", metavar="DIR", help="model cache (after `btsbot models pull`)")
    demo.add_argument("--step-hours", type=float, default=1.0, help="simulated hours between cycles (default 1)")
    demo.add_argument("--until", metavar="DATE|JD", help="stop the replay here (default: after the last alert)")
    demo.add_argument("--journal", metavar="FILE", help="keep the journal here (default: a temporary file)")
    demo.add_argument("--source", choices=("kowalski", "boom"), default="kowalski",
                      help="the local broker the alerts come from (default kowalski)")
    demo.add_argument("--format", choices=("text", "json"), default="text",
                      help="json: the summary as a JSON list of {objectId, saved_at, followup_requested_at}")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("sim", help="local stand-ins of Kowalski and SkyPortal (test/demo tools, loopback only)")
    ssub = sim.add_subparsers(dest="sim_command", required=True, metavar="SERVICE")
    from bot.sim_cli import register as register_sim  # argparse only: the stand-ins load when `sim` runs

    register_sim(ssub)
    _add_logging_options(sub)
    return p


TIME_HELP = " (an ISO date 2023-10-05 or datetime 2023-10-05T10:37:55Z, UTC; a JD 2460222.5; an MJD mjd:60222)"
RUN_EPILOG = """examples:
  btsbot run --once --config btsbot.yaml --since 2023-10-04 --until 2023-10-06
  btsbot run --once --config btsbot.yaml --since mjd:60221.5 --until 2460224.5
  btsbot run --config btsbot.yaml --since 2023-10-01 -v      # the daemon, backfilling from Oct 1st
A bare number must be a JD (2000-2100); an MJD needs its prefix (mjd:60222)."""


def _logging_options(parser, default) -> None:
    taken = {o for a in parser._actions for o in a.option_strings}
    options = [(("-v", "--verbose"), dict(action="count", help="more logging on stderr (-v: each poll and action, "
                                                           "retries, tracebacks; -vv: debug)")),
               (("--log-format",), dict(choices=("text", "json"), help="log lines as text or JSON")),
               (("--log-file",), dict(metavar="FILE", help="append the log to FILE instead of stderr"))]
    for names, kw in options:
        if not taken.intersection(names):
            parser.add_argument(*names, default=default, **kw)


def _add_logging_options(subparsers) -> None:
    """-v/--log-format/--log-file also after any subcommand (`btsbot run -v`), whoever registered it."""
    for sp in subparsers.choices.values():
        _logging_options(sp, argparse.SUPPRESS)
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_logging_options(action)


def main(argv=None) -> int:
    from bot.artifacts import ArtifactError
    from bot.config import ConfigError
    from bot.boom.client import BoomError
    from bot.kowalski.client import KowalskiError
    from bot.lock import JournalLocked
    from bot.logs import setup_logging
    from bot.skyportal.errors import SkyPortalError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        setup_logging(args.verbose, args.log_format, args.log_file)
    except OSError as exc:
        return _die(f"--log-file {args.log_file}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        return args.func(args)
    except ArtifactError as exc:
        return _die(str(exc), EXIT_MODEL)
    except ConfigError as exc:
        return _die(str(exc), EXIT_USAGE)
    except JournalLocked as exc:
        return _die(str(exc), EXIT_LOCKED)
    except (KowalskiError, BoomError, SkyPortalError) as exc:
        return _die(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _die("interrupted", 130)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
