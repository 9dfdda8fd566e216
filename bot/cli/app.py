"""The `btsbot` parser and entry point: the commands register themselves (one module each, here and in
`bot.backtest.cli`, `bot.report.cli`, `bot.report.explain`, `bot.sim_cli`); `main` maps the errors every
command may raise to the exit codes of `bot.cli.common`."""

from __future__ import annotations

import argparse

from bot import __version__
from bot.cli.common import EXIT_CODES, EXIT_FAILED, EXIT_LOCKED, EXIT_MODEL, EXIT_OK, EXIT_USAGE, _die


def build_parser() -> argparse.ArgumentParser:
    from bot.backtest.check import register as register_check
    from bot.backtest.cli import register as register_backtest
    from bot.cli import demo, guard, journal, labels, models, run, score
    from bot.report.cli import register as register_report
    from bot.report.explain import register as register_explain
    from bot.sim_cli import register as register_sim  # argparse only: the stand-ins load when `sim` runs

    p = argparse.ArgumentParser(prog="btsbot", description="Autonomous scanner of the ZTF Bright Transient Survey.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"btsbot {__version__}")
    _logging_options(p, argparse.SUPPRESS)
    p.set_defaults(verbose=0, log_format="text", log_file=None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models.register(sub)
    score.register(sub)
    run.register(sub)
    journal.register(sub)
    labels.register(sub)
    guard.register(sub)
    register_backtest(sub)
    register_check(sub)
    register_report(sub)
    register_explain(sub)
    demo.register(sub)
    sim = sub.add_parser("sim", help="local stand-ins of Kowalski and SkyPortal (test/demo tools, loopback only)")
    ssub = sim.add_subparsers(dest="sim_command", required=True, metavar="SERVICE")
    register_sim(ssub)
    _add_logging_options(sub)
    return p


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
