"""`btsbot run [--once]`: the daemon, or one cycle."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from bot.cli.common import (EXIT_CODES, EXIT_FAILED, EXIT_OK, EXIT_PENDING, _check_window, _die,
                            _load_config, jd_window)


def register(sub) -> None:
    run = sub.add_parser("run", help="run the bot: poll Kowalski, score, apply the policies, act on Fritz",
                         epilog=RUN_EPILOG + "\n\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", metavar="FILE", help="YAML config merged over config/config.defaults.yaml")
    run.add_argument("--once", action="store_true", help="run exactly one cycle and exit (default: the daemon)")
    jd_window(run, "start of the window (default: the last committed poll minus the overlap); with the daemon, "
                   "its first cycle starts here and catches up to now",
              "end of the window, run --once only (default: now)")
    run.add_argument("--mode", choices=("dry-run", "live"), help="override the config's mode")
    run.add_argument("--promote-dry-run", action="store_true",
                     help="run --once, live: first act on the dry-run decisions whose policy still holds and whose "
                          "alert is younger than --max-age-days (journaled as live decisions, exactly once), then "
                          "run the cycle")
    run.add_argument("--max-age-days", type=float, default=None, metavar="DAYS",
                     help="with --promote-dry-run: the oldest deciding alert promoted (default: 2)")
    run.set_defaults(func=cmd_run)


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
    if (args.promote_dry_run or args.max_age_days is not None) and not args.once:
        raise ConfigError("--promote-dry-run is for run --once (one explicit promotion, then one cycle)")
    if args.max_age_days is not None and not args.promote_dry_run:
        raise ConfigError("--max-age-days goes with --promote-dry-run")
    if args.max_age_days is not None and args.max_age_days <= 0:
        raise ConfigError(f"--max-age-days must be > 0, not {args.max_age_days:g}")
    if args.promote_dry_run and cfg.mode != "live":
        raise ConfigError("--promote-dry-run acts on Fritz: it needs mode: live (or --mode live)")
    if not args.once:
        if args.until is not None:
            raise ConfigError("--until is for run --once; the daemon polls up to now")
        return run_daemon(cfg, stop=stop, since_jd=args.since, hard_exit=True)
    rt = open_runtime(cfg, stop=stop)
    try:
        if args.promote_dry_run:
            _promote(rt, args.max_age_days)
        return _run_once(rt, args, stop)
    finally:
        rt.close()


def _promote(rt, max_age_days: float | None) -> None:
    """The dry-run decisions acted on live (`bot.promote`), planned before the cycle that runs them."""
    from bot.promote import DEFAULT_MAX_AGE_DAYS, promote_dry_run

    days = DEFAULT_MAX_AGE_DAYS if max_age_days is None else max_age_days
    report = promote_dry_run(rt, days)
    print("btsbot: " + "\n".join(report.lines()))


def _run_once(rt, args, stop: threading.Event) -> int:
    """One cycle (`bot.daemon.run_one_cycle`: obeys a stop signal within the grace period); its exit code."""
    from bot.daemon import describe_failure, run_one_cycle, summary_log
    from bot.logs import verbose

    try:
        report = run_one_cycle(rt, since_jd=args.since, until_jd=args.until, stop=stop)
    except Exception as exc:
        if verbose():
            logging.getLogger("bot.cli").error("cycle failed", exc_info=exc)
        return _die(f"cycle failed: {describe_failure(exc)}", EXIT_FAILED)
    if report is None:  # stopped before it started
        return EXIT_OK
    print(f"btsbot {rt.config.mode}: " + "\n".join(report.lines()))
    if getattr(args, "log_file", None) or getattr(args, "log_format", "text") == "json":
        summary_log.info(report.summary())  # the log's one line per cycle (on a terminal, stdout just said it)
    pending = len(rt.journal.unfinished_actions())
    if stop.is_set():
        print(f"btsbot: stopped; {pending} actions left pending for the next run", file=sys.stderr)
        return EXIT_OK
    if pending:
        print(f"btsbot: {pending} actions remain pending (Fritz failed or unreachable?); the next run resumes them",
              file=sys.stderr)
        return EXIT_PENDING
    return EXIT_OK


RUN_EPILOG = """examples:
  btsbot run --once --config btsbot.yaml --since 2023-10-04 --until 2023-10-06
  btsbot run --once --config btsbot.yaml --since mjd:60221.5 --until 2460224.5
  btsbot run --config btsbot.yaml --since 2023-10-01 -v      # the daemon, backfilling from Oct 1st
  btsbot run --once --config btsbot.yaml --mode live --promote-dry-run   # go live: act on the last 2 days' shadow
A bare number must be a JD (2000-2100); an MJD needs its prefix (mjd:60222)."""
