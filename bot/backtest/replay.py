"""Backtesting policies on a journal: which sources would these policies select, and when?

Every scored alert the bot handled is in the journal, so candidate policies (other thresholds, another
model version's scores) can be replayed over them without touching Kowalski or Fritz. The policies are
evaluated exactly as the cycle evaluates them (`bot.core.policies.evaluate`), per source in jd order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from bot.core.policies import Decision, Policy, evaluate
from bot.journal import Journal


def backtest(journal: Journal, policies: Iterable[Policy], since_jd: float | None = None,
             until_jd: float | None = None) -> tuple[list[Decision], dict]:
    """Decisions of `policies` over the journaled alerts (optionally a jd window) and a summary."""
    policies = list(policies)
    alerts = journal.history(since_jd=since_jd, until_jd=until_jd, kind="alerts")
    by_object: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_object[a["objectId"]].append(a)
    decisions = [d for alerts_of in by_object.values() for p in policies
                 if (d := evaluate(p, alerts_of)) is not None]
    decisions.sort(key=lambda d: (d.jd, d.policy))
    first_seen = {oid: min(a["jd"] for a in rows) for oid, rows in by_object.items()}
    summary = {
        "alerts": len(alerts),
        "sources": len(by_object),
        "scored": sum(a["score"] is not None for a in alerts),
        "selected": {p.name: sum(d.policy == p.name for d in decisions) for p in policies},
        "median_days_first_alert_to_decision": {
            p.name: _median([d.jd - first_seen[d.objectId] for d in decisions if d.policy == p.name])
            for p in policies},
    }
    return decisions, summary


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
