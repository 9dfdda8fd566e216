"""The `btsbot` command line, a package: `common` (exit codes, errors, shared arguments), `app` (the parser
and `main`), one module per command (`models`, `score`, `run`, `journal`, `demo`; backtest, report and
explain live beside their packages). Importing `bot.cli` loads only `common`."""

from __future__ import annotations

from bot.cli.common import (EXIT_CODES, EXIT_FAILED, EXIT_LOCKED, EXIT_MODEL, EXIT_OK, EXIT_PENDING,
                            EXIT_USAGE)

__all__ = ["EXIT_CODES", "EXIT_FAILED", "EXIT_LOCKED", "EXIT_MODEL", "EXIT_OK", "EXIT_PENDING", "EXIT_USAGE",
           "build_parser", "main"]


def build_parser():
    from bot.cli.app import build_parser as build

    return build()


def main(argv=None) -> int:
    from bot.cli.app import main as run

    return run(argv)
