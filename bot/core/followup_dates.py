"""The dates of follow-up requests (pure): Kowalski's start/end date format, SkyPortal's timestamps, naive UTC.

Part of production's follow-up rules (:mod:`bot.core.followup_rules`, which re-exports these names).
Contract: ``docs/contracts.md``, its SP and KW sections.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["DATE_FORMAT", "format_date", "parse_timestamp", "to_utc_naive"]

# Kowalski formats start/end dates like this (KW alert_broker.py:1551-1566).
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def to_utc_naive(dt: datetime) -> datetime:
    """A naive UTC datetime (SkyPortal's convention). Naive input is taken to be UTC already."""
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def format_date(dt: datetime) -> str:
    """Format a date the way Kowalski does for SEDM start/end dates (UTC, microseconds always)."""
    return to_utc_naive(dt).strftime(DATE_FORMAT)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a SkyPortal timestamp leniently into naive UTC; None if it cannot be parsed.

    Accepts ISO strings with or without microseconds (SkyPortal omits them when they are 0, SP 0.2),
    with ``T`` or a space, with ``Z`` or an offset (converted to UTC), or without a zone (= UTC);
    also datetimes.
    """
    if isinstance(value, datetime):
        return to_utc_naive(value)
    if not isinstance(value, str):
        return None
    s = value.strip()
    if not s:
        return None
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        # e.g. more than 6 fractional digits: truncate them
        m = re.match(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", s)
        if not m:
            return None
        try:
            dt = datetime.fromisoformat(f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}")
        except ValueError:
            return None
    return to_utc_naive(dt)
