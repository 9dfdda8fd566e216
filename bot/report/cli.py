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
    rp.add_argument("--format", choices=("text", "html", "json"), default=None,
                    help="text: a plain summary on stdout (default without --out); json: with --agreement")
    rp.add_argument("--agreement", action="store_true",
                    help="shadow agreement: the journal's decisions in the window against what humans did on Fritz "
                         "(--labels, as `btsbot labels` writes them): sources both selected (and who was first), "
                         "those only humans saved (and why the bot did not), those only the bot would have")
    rp.add_argument("--labels", metavar="FILE", help="with --agreement: objectId,label,saved_at,triggered_at "
                                                     "(`btsbot labels --unclassified 0` keeps unclassified saves)")
    rp.add_argument("--group", type=int, metavar="ID",
                    help="with --agreement, instead of --labels: read what humans did from this Fritz group now "
                         "(as `btsbot labels` reads it: saves from 30 days before the window to now)")
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
    if args.agreement:
        return _agreement(args, since, until)
    if args.format == "json" or args.labels or args.group is not None:
        return _die("--format json, --labels and --group go with --agreement", EXIT_USAGE)
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


def _agreement(args, since: float, until: float) -> int:
    import json

    from bot.backtest.labels import LabelError, read_labels
    from bot.backtest.trials import config_policies
    from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, _load_config
    from bot.journal import Journal
    from bot.report.agreement import agreement, as_dict, lines
    from bot.timeutil import utc_text

    if bool(args.labels) == (args.group is not None):
        return _die("--agreement needs --labels FILE (as `btsbot labels` writes it) or --group ID (read from "
                    "Fritz now), one of them", EXIT_USAGE)
    if args.out or args.format == "html":
        return _die("--agreement prints text or JSON (--format json), not HTML", EXIT_USAGE)
    cfg = _load_config(args)
    try:
        labels = read_labels(args.labels) if args.labels else _fritz_labels(cfg, args.group, since)
    except LabelError as exc:
        return _die(str(exc), EXIT_FAILED)
    path = Path(args.journal) if args.journal else cfg.journal_path
    if not path.exists():
        return _die(f"no journal at {path} (--journal, or state.path in the config)", EXIT_FAILED)
    with Journal(path) as journal:
        decisions = journal.history(since_jd=since, until_jd=until, kind="decisions")
        ag = agreement(config_policies(cfg), decisions, labels, journal.alerts_for_object, (since, until),
                       journal.get_decision)
    if args.format == "json":
        json.dump(as_dict(ag), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(lines(ag, utc_text)) + "\n")
    return EXIT_OK


LOOKBACK_DAYS = 30.0  # human saves this long before the window still answer a decision in it


def _fritz_labels(cfg, group: int, since: float) -> dict:
    """objectId -> Label of what humans did on `group`, read now (`bot.skyportal.labels`), unclassified
    sources kept (their label None): a human's save is what agreement compares with, classified or not."""
    from bot.backtest.labels import Label
    from bot.cli.labels import fritz_reader
    from bot.config import ConfigError
    from bot.skyportal.labels import GroupNotReadable, read_fritz_labels
    from bot.timeutil import parse_time

    client = fritz_reader(cfg)
    try:
        result = read_fritz_labels(client, group, since - LOOKBACK_DAYS)
    except GroupNotReadable as exc:
        raise ConfigError(str(exc)) from None
    finally:
        client.close()
    return {r.object_id: Label(r.label, None if r.saved_at is None else parse_time(r.saved_at),
                               None if r.triggered_at is None else parse_time(r.triggered_at)) for r in result.rows}
