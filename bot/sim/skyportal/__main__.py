"""`python -m bot.sim.skyportal [options]`: the same as `btsbot sim skyportal [options]`."""

import argparse
import sys

from bot.sim_cli import register_skyportal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sim.skyportal")
    sub = parser.add_subparsers(dest="cmd")
    register_skyportal(sub)
    args = parser.parse_args(["skyportal", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
