"""What every `btsbot` command shares: the exit codes, the one-line error, the config and cache a command
reads, and the time arguments. A leaf: it imports nothing of the commands (each registers itself)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_PENDING, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done (run --once: the cycle committed and no action is left pending; also after SIGTERM/SIGINT)
  {EXIT_FAILED}  failed (run --once: the cycle failed, e.g. Kowalski or Fritz unreachable; nothing of it committed)
  {EXIT_USAGE}  usage or configuration error (bad option or key, missing credentials, unusable state.path)
  {EXIT_MODEL}  model missing or corrupt (run `btsbot models pull`)
  {EXIT_PENDING}  run --once: the cycle committed but actions remain pending (resumed by the next run)
  {EXIT_LOCKED}  another btsbot writer holds the journal (state.path)"""
TIME_HELP = " (an ISO date 2023-10-05 or datetime 2023-10-05T10:37:55Z, UTC; a JD 2460222.5; an MJD mjd:60222)"


def _die(msg: str, code: int) -> int:
    print(f"btsbot: {msg}", file=sys.stderr)
    return code


def _load_config(args):
    from bot.config import load_config

    return load_config(getattr(args, "config", None))


def _cache(args, cfg=None):
    from bot.artifacts import cache_root

    return cache_root(getattr(args, "cache_dir", None) or (cfg.models.cache_dir if cfg else None))


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


def _existing_journal(args, cfg=None) -> Path | None:
    """The journal `--journal` or the config's state.path names; None (after saying so) if it is absent."""
    path = Path(args.journal) if getattr(args, "journal", None) else (cfg or _load_config(args)).journal_path
    if not path.exists():
        _die(f"no journal at {path} (--journal, or state.path in the config)", EXIT_FAILED)
        return None
    return path


def common(sp, config: bool = True) -> None:
    """--config and --cache-dir, as the model commands take them."""
    if config:
        sp.add_argument("--config", metavar="FILE", help="YAML config merged over config/config.defaults.yaml")
    sp.add_argument("--cache-dir", metavar="DIR", help="model cache (default: models.cache_dir, $BTSBOT_CACHE_DIR, ~/.cache/btsbot)")


def jd_window(sp, since_help: str = "from this time", until_help: str = "before this time") -> None:
    sp.add_argument("--since", type=_jd_arg, metavar="TIME", help=since_help + TIME_HELP)
    sp.add_argument("--until", type=_jd_arg, metavar="TIME", help=until_help + TIME_HELP)
