"""`btsbot release-guard`: let the bot act on what it planned when the runaway guard tripped."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.cli.common import EXIT_FAILED, EXIT_OK, _existing_journal


def register(sub) -> None:
    rg = sub.add_parser("release-guard", help="after checking the plan, let the next run act on the sources the "
                                              "runaway guard held (limits.max_sources_per_cycle)")
    rg.add_argument("--config", metavar="FILE", help="the config whose state.path is the journal")
    rg.add_argument("--journal", metavar="FILE", help="the journal (default: the config's state.path)")
    rg.set_defaults(func=cmd_release_guard)


def cmd_release_guard(args) -> int:
    from bot.actions.guard import release
    from bot.journal import Journal

    path = _existing_journal(args)
    if path is None:
        return EXIT_FAILED
    with Journal(path) as journal:
        tripped = release(journal, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        pending = len(journal.unfinished_actions("live"))
    if tripped is None:
        print("btsbot: the guard has not tripped; nothing to release")
        return EXIT_OK
    print(f"btsbot: guard released (it tripped at {tripped.get('at')} for {tripped.get('sources')} sources, limit "
          f"{tripped.get('limit')}); the next run acts on the {pending} pending actions, once")
    return EXIT_OK
