"""`btsbot sim skyportal` once parsed (the parser is in bot/sim_cli.py, which imports nothing heavy;
`python -m bot.sim.skyportal` is `__main__.py`).
"""

from __future__ import annotations

import argparse
import sys

from bot.sim.faults import faults_from_args, wait_for_stop_signal
from bot.sim.skyportal.server import SkyPortalSim


def serve(args: argparse.Namespace) -> int:
    """Start the stand-in, print the ready line (URL and the seeded bot token), serve until SIGTERM/SIGINT."""
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
