"""`btsbot sim kowalski` once parsed (the parser is in bot/sim_cli.py, which imports nothing heavy)."""

from __future__ import annotations

import argparse
import sys

from bot.sim.clock import SimClock, parse_time
from bot.sim.faults import faults_from_args
from bot.sim.httpd import serve_until_stopped
from bot.sim.kowalski.server import KowalskiSim


def serve(args: argparse.Namespace) -> int:
    """Load the alerts, print the ready line (URL, token, number of alerts), serve until SIGTERM/SIGINT."""
    start_jd = args.start_jd if args.start_jd is not None else (parse_time(args.start) if args.start else None)
    faults = faults_from_args(args)
    sim = KowalskiSim(host=args.host, port=args.port, token=args.token, users={args.user: args.password},
                      clock=SimClock(start_jd=start_jd, speed=args.speed), faults=faults)
    n = sim.load_paths(args.alerts)
    for path, why in sim.load_errors:
        print(f"kowalski sim: skipped {path}: {why}", file=sys.stderr)
    return serve_until_stopped(sim, f"kowalski sim ready on {{url}} token={sim.token} alerts={n}")
