"""The command line of the local stand-ins (`btsbot sim kowalski|boom|skyportal`): argparse only.

`btsbot` builds its whole parser for every command, so this module imports nothing but argparse: the
stand-ins themselves (bot/sim/, mongomock) are imported by the handlers, when a `sim` command runs, never
by `btsbot run` or `btsbot score`.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add `kowalski` and `skyportal` to the `sim` subparsers."""
    register_kowalski(subparsers)
    register_boom(subparsers)
    register_skyportal(subparsers)


def add_fault_arguments(parser) -> None:
    """The fault-injection flags both stand-ins' command lines share (all off by default)."""
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 500/503")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="fraction answered 429 with Retry-After")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="fraction that hang (--hang-s) before processing")
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long a timeout fault hangs (default 30 s)")
    parser.add_argument("--fault-seed", type=int, default=None, help="random seed of the fault rates")


def add_broker_arguments(parser, broker: str, auth_path: str) -> None:
    """The flags the local brokers (Kowalski, BOOM) share: the alerts served, the address, the account."""
    parser.add_argument("--alerts", nargs="+", required=True, metavar="PATH",
                        help="avro alert files or directories (searched recursively)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback)")
    parser.add_argument("--port", type=int, default=4000, help=f"port (default: 4000, {broker}'s; 0 = any free port)")
    parser.add_argument("--user", default="admin", help=f"username accepted by {auth_path} (default: admin)")
    parser.add_argument("--password", default="admin", help="password of --user (default: admin)")


def register_kowalski(subparsers) -> argparse.ArgumentParser:
    """Add the `kowalski` subcommand (wired as `btsbot sim kowalski`)."""
    p = subparsers.add_parser(
        "kowalski",
        help="run a local Kowalski stand-in (test/demo tool, loopback only by default)",
        description="A local stand-in for Kowalski's HTTP API serving ZTF alert packets from avro files, "
                    "for tests and demos. It is a test/demo tool: it binds to loopback (127.0.0.1) by default, "
                    "keeps everything in memory and must not be exposed to a network.")
    add_broker_arguments(p, "Kowalski", "/api/auth")
    p.add_argument("--token", help="a token to accept (default: a generated one, printed when ready)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--start-jd", type=float, help="simulated start time as a JD (default: all alerts visible)")
    start.add_argument("--start", metavar="DATE", help="simulated start time as an ISO date/datetime (UTC)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated days per real day (default 1 = real time; 3600 = one hour per second)")
    add_fault_arguments(p)
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    """`btsbot sim kowalski`: serve until SIGTERM/SIGINT."""
    from bot.sim.kowalski.cli import serve

    return serve(args)


def register_boom(subparsers) -> argparse.ArgumentParser:
    """Add the `boom` subcommand (wired as `btsbot sim boom`)."""
    p = subparsers.add_parser(
        "boom", help="run a local BOOM stand-in (test/demo tool, loopback only by default)",
        description="A local stand-in for BOOM's API (Kowalski's successor) serving ZTF alert packets from avro "
                    "files, stored as BOOM stores them. A test/demo tool: it binds to loopback (127.0.0.1) by "
                    "default, keeps everything in memory and must not be exposed to a network.")
    add_broker_arguments(p, "BOOM", "/auth")
    p.add_argument("--no-cutout-catalog", action="store_true",
                   help="keep the cutouts out of the catalogs, as a BOOM with S3 cutout storage does")
    add_fault_arguments(p)
    p.set_defaults(func=run_boom_cli)
    return p


def run_boom_cli(args: argparse.Namespace) -> int:
    """`btsbot sim boom`: serve until SIGTERM/SIGINT."""
    from bot.sim.boom.cli import serve

    return serve(args)


def register_skyportal(subparsers) -> argparse.ArgumentParser:
    """Add the `skyportal` subcommand (wired as `btsbot sim skyportal`)."""
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
    p.set_defaults(func=run_skyportal_cli)
    return p


def run_skyportal_cli(args: argparse.Namespace) -> int:
    """`btsbot sim skyportal`: serve until SIGTERM/SIGINT."""
    from bot.sim.skyportal.cli import serve

    return serve(args)
