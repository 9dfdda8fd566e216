"""The runaway guard: a cycle that would write to Fritz for more sources than `limits.max_sources_per_cycle`
writes nothing. A threshold typo (`min_score: 0.05`) must not post 2,000 saves.

Live only. The plan stays journaled (its actions pending); the trip is kept in the journal's state
(`guard.tripped`: when, how many sources, the limit), so every later cycle writes nothing either -- the
bot is unhealthy (`/healthz` 503, `btsbot_guard_tripped` 1) -- until an operator looks at the journal and
runs `btsbot release-guard` (the next run then acts on what was planned, once) or raises the limit. In
dry-run a cycle over the limit only says it would trip in live. (Pure state over the journal; the
engine asks `check` before running the pending actions.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Mapping

TRIPPED, RELEASED = "guard.tripped", "guard.released"


@dataclass(frozen=True)
class GuardState:
    tripped: bool
    sources: int  # sources with pending Fritz writes
    limit: int | None
    since: str | None = None  # when it tripped (UTC ISO)
    released: bool = False  # this run acts under an operator's release

    def line(self) -> str:
        if self.tripped:
            return (f"GUARD TRIPPED (since {self.since}): {self.sources} sources would be written to Fritz, more than "
                    f"limits.max_sources_per_cycle {self.limit}; nothing was written. Check the plan "
                    "(btsbot journal --kind actions), then `btsbot release-guard` or raise the limit")
        if self.released:
            return f"guard released by the operator: acting on {self.sources} sources (limit {self.limit})"
        return ""


def writing_sources(pending: Iterable[Mapping], kinds: Mapping) -> set[str]:
    """The sources with a pending action of a kind that writes to Fritz."""
    return {a.objectId for a in pending if getattr(kinds.get(a.action), "service", None) == "skyportal"}


def check(journal, pending: list[dict], kinds: Mapping, limit: int | None, mode: str, now: str) -> GuardState:
    """Whether the pending actions may run (see the module docstring); records a trip in the journal."""
    n = len(writing_sources(pending, kinds))
    tripped = _load(journal.get_state(TRIPPED))
    released = _load(journal.get_state(RELEASED))
    if mode != "live" or limit is None:
        return GuardState(False, n, limit)
    if tripped:
        return GuardState(True, n, limit, tripped.get("at"))
    if n <= limit:
        if released:
            journal.set_state(RELEASED, "")  # nothing over the limit left to act on: the release is spent
        return GuardState(False, n, limit)
    if released and n <= int(released.get("sources", 0)):
        journal.set_state(RELEASED, "")  # one run acts on what the operator released
        return GuardState(False, n, limit, released=True)
    journal.set_state(TRIPPED, json.dumps({"at": now, "sources": n, "limit": limit}))
    return GuardState(True, n, limit, now)


def release(journal, now: str) -> dict | None:
    """`btsbot release-guard`: clear a trip and let the next run act on up to as many sources as then
    planned; the trip (or None when the guard had not tripped)."""
    tripped = _load(journal.get_state(TRIPPED))
    if not tripped:
        return None
    with journal.transaction():
        journal.set_state(RELEASED, json.dumps({"at": now, "sources": tripped.get("sources", 0),
                                                "tripped_at": tripped.get("at")}))
        journal.set_state(TRIPPED, "")
    return tripped


def _load(raw: str | None) -> dict | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
