"""The command line of the SkyPortal stand-in: `btsbot sim skyportal` (register_cli) and
`python -m bot.sim.skyportal` (main).
"""

from __future__ import annotations

import argparse
import sys

from bot.sim.faults import add_fault_arguments, faults_from_args, wait_for_stop_signal
from bot.sim.skyportal.server import SkyPortalSim


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the `skyportal` subcommand (wired by the lead as `btsbot sim skyportal`)."""
    p = subparsers.add_parser(
        "skyportal",
        help="run a local SkyPortal/Fritz stand-in (test/demo tool, loopback by default)",
        description="Run a local SkyPortal/Fritz stand-in implementing the API the bot uses (sources, "
                    "source_groups, comments, annotations, follow-up requests to a simulated SEDM). It is a "
                    "test/demo tool: it binds to 127.0.0.1 by default, its tokens are published in its seed, "
                    "and it must never be exposed. Stops on SIGTERM/SIGINT.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 picks a free one)")
    p.add_argument("--seed", metavar="FILE", default=None, help="seed YAML (default: the packaged seed)")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="SQLite file to keep state across restarts (default: in memory)")
    add_fault_arguments(p)
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=_cli_run)
    return p


def _cli_run(args: argparse.Namespace) -> int:
    faults = faults_from_args(args)
    try:
        sim = SkyPortalSim(seed=args.seed, db_path=args.db, host=args.host, port=args.port, faults=faults,
                           verbose=args.verbose)
        url = sim.start()
    except (OSError, ValueError) as e:
        print(f"skyportal sim: cannot start: {e}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"skyportal sim: WARNING bound to {args.host}, not loopback; its tokens are public",
              file=sys.stderr)
    print(f"SkyPortal sim ready at {url} token {sim.token}", flush=True)
    try:
        wait_for_stop_signal()
    finally:
        sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.sim.skyportal [options]`: the same as `btsbot sim skyportal [options]`."""
    parser = argparse.ArgumentParser(prog="python -m bot.sim.skyportal")
    sub = parser.add_subparsers(dest="cmd")
    register_cli(sub)
    args = parser.parse_args(["skyportal", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
