"""`btsbot report`: its arguments and command (wired into bot/cli.py by `register`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    from bot.cli.common import _jd_arg

    rp = subparsers.add_parser("report", help="what the bot did in a night, from the journal (HTML with plots, or text)")
    rp.add_argument("--config", metavar="FILE", help="the policies, skyportal.url and journal (state.path)")
    rp.add_argument("--journal", metavar="FILE", help="the journal (default: the config's state.path)")
    rp.add_argument("--night", metavar="YYYY-MM-DD", help="the night starting that date's evening at Palomar")
    rp.add_argument("--since", type=_jd_arg, metavar="DATE|JD", help="from this date or JD (instead of --night)")
    rp.add_argument("--until", type=_jd_arg, metavar="DATE|JD", help="before this date or JD")
    rp.add_argument("--out", metavar="DIR", help="write DIR/index.html and its PNG plots")
    rp.add_argument("--format", choices=("text", "html"), default=None,
                    help="text: a plain summary on stdout (default without --out)")
    rp.set_defaults(func=cmd_report)
    return rp


def cmd_report(args) -> int:
    from bot.backtest.trials import config_policies
    from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, _load_config
    from bot.journal import Journal
    from bot.report.night import build_night, night_window
    from bot.report.render import text, write_html

    if args.night and (args.since is not None or args.until is not None):
        return _die("--night or --since/--until, not both", EXIT_USAGE)
    if args.night:
        try:
            since, until = night_window(args.night)
        except ValueError:
            return _die(f"--night {args.night!r}: expected YYYY-MM-DD", EXIT_USAGE)
    elif args.since is not None and args.until is not None:
        since, until = args.since, args.until
    else:
        return _die("give --night YYYY-MM-DD or both --since and --until", EXIT_USAGE)
    if args.format == "html" and not args.out:
        return _die("--format html needs --out DIR", EXIT_USAGE)
    cfg = _load_config(args)
    path = Path(args.journal) if args.journal else cfg.journal_path
    if not path.exists():
        return _die(f"no journal at {path} (--journal, or state.path in the config)", EXIT_FAILED)
    with Journal(path) as journal:
        night = build_night(journal, [p for p, _ in config_policies(cfg)], cfg.skyportal.url, since, until,
                            cfg.drift.tolerance)
    if args.out:
        print(f"report: {write_html(night, args.out)}", file=sys.stderr)
    if args.format == "text" or not args.out:
        sys.stdout.write(text(night))
    return EXIT_OK
