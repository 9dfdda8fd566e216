"""`btsbot sim boom` once parsed (the parser is in bot/sim_cli.py, which imports nothing heavy)."""

from __future__ import annotations

import argparse
import sys

from bot.alert_files import iter_alert_files
from bot.sim.boom.server import BoomSim
from bot.sim.faults import faults_from_args
from bot.sim.httpd import serve_until_stopped


def serve(args: argparse.Namespace) -> int:
    """Load the alerts, print the ready line (URL, user, number of alerts), serve until SIGTERM/SIGINT."""
    sim = BoomSim(host=args.host, port=args.port, users={args.user: args.password}, faults=faults_from_args(args),
                  cutout_catalog=not args.no_cutout_catalog)
    n = 0
    for af in iter_alert_files([str(p) for p in args.alerts]):
        if af.error:
            print(f"boom sim: skipped {af.path}: {af.error}", file=sys.stderr)
            continue
        n += sim.load_alerts(af.alerts)
    return serve_until_stopped(sim, f"boom sim ready on {{url}} user={args.user} alerts={n}")
