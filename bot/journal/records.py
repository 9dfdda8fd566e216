"""The journal's rows as typed records: what `Journal` hands out for a decision and an action.

Each is a frozen dataclass, read by attribute (``a.outcome``, ``d.evidence``). It is also a read-only
`Mapping` of its columns (``a["outcome"]``, ``dict(a)``, ``{**d, "actions": ...}``), so that the reports,
the JSON output and the journals' readers that index rows by column keep one way to read them, and a
record compares equal to the dict of its columns.

Alerts stay plain dicts on purpose: the pure core (`bot.core.policies`, the summaries) reads a source's
alerts from the journal, from alert files and from a backtest alike, as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, Iterator


@cache
def _columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class Record(Mapping):
    """A frozen dataclass that reads as a mapping of its fields (never written: build a new one)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key not in _columns(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_columns(type(self)))

    def __len__(self) -> int:
        return len(_columns(type(self)))

    @classmethod
    def of(cls, row: Mapping[str, Any]):
        """The record of a row (a `sqlite3.Row` or a dict) holding at least its columns."""
        return cls(**{c: row[c] for c in _columns(cls)})


@dataclass(frozen=True, eq=False, repr=True)
class DecisionRecord(Record):
    """A policy's decision about a source (table ``decisions``): once per (policy, objectId)."""

    id: int
    policy: str
    objectId: str
    candid: int | None
    jd: float | None
    evidence: Any  # JSON: what the policy saw when it fired (`bot.core.policies.Decision.evidence`)
    time: str  # when journaled (UTC ISO)
    mode: str | None  # "dry-run" | "live": the mode of the run that made it


@dataclass(frozen=True, eq=False, repr=True)
class ActionRecord(Record):
    """An action of a decision (table ``actions``) with its decision's policy, source and alert."""

    id: int
    decision_id: int
    action: str  # the kind (`bot.actions.registry`)
    key: str | None  # what makes it unique within its decision and kind (None: the only one)
    status: str  # "pending" (journaled, not finished) | "done"
    outcome: str | None
    request: Any  # JSON, scrubbed
    response: Any  # JSON, scrubbed
    error: str | None
    attempts: int
    time: str  # journaled (before sending)
    finished: str | None
    attempt: Any  # JSON: what was being sent, journaled just before sending (`mark_sending`)
    mode: str | None  # "dry-run" | "live": the mode that planned it (None: either)
    policy: str
    objectId: str
    candid: int | None
    jd: float | None

    @property
    def pending(self) -> bool:
        return self.status == "pending"
