"""`btsbot demo`: the night of SN 2023tyk replayed against the local stand-ins."""

from __future__ import annotations

from bot.cli.common import EXIT_OK


def register(sub) -> None:
    demo = sub.add_parser("demo", help="replay the night of SN 2023tyk against local Kowalski and SkyPortal stand-ins")
    demo.add_argument("--cache-dir", metavar="DIR", help="model cache (after `btsbot models pull`)")
    demo.add_argument("--step-hours", type=float, default=1.0, help="simulated hours between cycles (default 1)")
    demo.add_argument("--until", metavar="DATE|JD", help="stop the replay here (default: after the last alert)")
    demo.add_argument("--journal", metavar="FILE", help="keep the journal here (default: a temporary file)")
    demo.add_argument("--source", choices=("kowalski", "boom"), default="kowalski",
                      help="the local broker the alerts come from (default kowalski)")
    demo.add_argument("--format", choices=("text", "json"), default="text",
                      help="json: the summary as a JSON list of {objectId, saved_at, followup_requested_at}")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from bot.demo import demo_cli

    demo_cli(args.cache_dir, step_hours=args.step_hours, until=args.until, journal=args.journal, fmt=args.format,
             source=args.source)
    return EXIT_OK
