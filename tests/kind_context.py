"""What the tests of the action kinds (tests/test_kind_*.py) share: the configured policies, a `Context`
built directly (no engine, no cycle) and a scored alert of SN 2023tyk for the journal."""

from __future__ import annotations

from datetime import datetime

from conftest import SN

from bot.actions.base import Context
from bot.actions.registry import KINDS
from bot.config import load_config
from bot.runtime import configured_policies


def acting(configs: list | None = None) -> list:
    """The acting policies of a config whose `policies` are `configs` (default: the shipped ones)."""
    return configured_policies(load_config(overrides={"policies": configs} if configs else None, env={}))


def kind_context(journal, pols, services=None, *, now: datetime, mode: str = "live", links=None) -> Context:
    """The Context the engine gives the kinds: what every kind shares, the registry, a fixed clock."""
    shared = {k: v for kind in KINDS.values() for k, v in kind.shares(pols).items()}
    return Context(journal, {p.name: p for p in pols}, services or {}, mode, lambda: now, shared, links or {},
                   dict(KINDS))


def alert(i: int, score: float, mag: float = 18.0) -> dict:
    """The i-th scored alert of SN 2023tyk (candid 2000 + i), as the cycle journals it."""
    return {"candid": 2000 + i, "objectId": SN, "jd": 2460220.5 + i, "score": score, "status": "ok",
            "magpsf": mag, "peakmag_so_far": mag, "age": float(i), "drb": 0.99, "extra": {"ra": 143.8, "dec": 83.97}}


def described(kind, journal, action, outcome: str, response: dict) -> tuple[str, str, str]:
    """What `kind.describe` says of a pending `action`, then of it finished with `outcome`, read back both as
    its journal record and as its `btsbot journal` history row (the two shapes the reports hand it)."""
    pending = kind.describe(action)
    journal.finish_action(action.id, outcome, response)
    (row,) = journal.history(kind="actions")
    return pending, kind.describe(journal.action(action.id)), kind.describe(row)
