"""How the journal stores values: JSON text, exact integer candids, NaN-free floats, UTC ISO timestamps."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

def _json_default(obj: Any) -> Any:
    if callable(getattr(obj, "tolist", None)):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, Mapping):  # the journal's records (`bot.journal.records`)
        return dict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)  # datetimes, paths, ...


def _dumps(obj: Any) -> str | None:
    if obj is None:
        return None
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _int(value: Any, name: str = "candid") -> int:
    """An exact int from an int, a numpy integer or a string of digits; never from a float."""
    if isinstance(value, str):
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer (not {type(value).__name__}: {value!r})") from None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN -> NULL


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
