"""`btsbot journal`: what the bot saw, decided and did, from the journal."""

from __future__ import annotations

import json

from bot.cli.common import EXIT_FAILED, EXIT_OK, _check_window, _existing_journal, jd_window


def register(sub) -> None:
    journal = sub.add_parser("journal", help="show what the bot did: alerts, decisions, actions")
    journal.add_argument("--config", metavar="FILE", help="the config whose state.path is the journal")
    journal.add_argument("--journal", metavar="FILE", help="the journal to read (default: the config's state.path)")
    journal.add_argument("--object", metavar="ZTF...", help="one source (case-insensitive)")
    jd_window(journal)
    journal.add_argument("--kind", choices=("all", "alerts", "decisions", "actions"), default="all",
                         help="which rows (default all)")
    journal.add_argument("--limit", type=int, help="the most recent N rows")
    journal.add_argument("--format", choices=("table", "json"), default="table",
                         help="table (default) or json (JSON Lines, one row per line)")
    journal.set_defaults(func=cmd_journal)


def cmd_journal(args) -> int:
    from bot.journal import Journal

    path = _existing_journal(args)
    if path is None:
        return EXIT_FAILED
    _check_window(args)
    with Journal(path) as journal:
        rows = journal.history(object_id=_object_id(args.object), since_jd=args.since, until_jd=args.until,
                               kind=args.kind, limit=args.limit)
    if args.format == "json":
        for row in rows:
            print(json.dumps(row, default=str))
        return EXIT_OK
    cols = ("time", "kind", "objectId", "candid", "alert_utc", "magpsf", "score", "status", "policy", "action",
            "outcome")
    table = [[_cell(v) for v in _journal_row(r)] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    return EXIT_OK


def _object_id(text: str | None) -> str | None:
    from bot.ids import normalize_object_id

    return normalize_object_id(text)


def _journal_row(r: dict) -> list:
    """One table row: the alert's (or the decision's alert's) UTC time, magpsf and score."""
    from bot.timeutil import jd_to_datetime

    ev = r.get("evidence") or {}
    magpsf = r.get("magpsf") if r["kind"] == "alert" else ev.get("magpsf")
    score = r.get("score") if r["kind"] == "alert" else ev.get("score")
    utc = f"{jd_to_datetime(r['jd']):%Y-%m-%d %H:%M:%S}" if r.get("jd") else None
    status = r.get("status")
    from bot.core.policies import score_text

    shown = None if score is None else score_text(score)  # as the report, explain and Fritz show it
    return [r.get("time"), r["kind"], r.get("objectId"), r.get("candid"), utc, magpsf, shown, status,
            r.get("policy"), r.get("action"), r.get("outcome")]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}" if value > 1000 else f"{value:.4g}"
    return str(value)
