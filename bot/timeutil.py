"""Julian Dates (UTC) and the date formats the command line accepts."""

from __future__ import annotations

import time
from datetime import datetime, timezone

UNIX_EPOCH_JD = 2440587.5


def utc_now_jd() -> float:
    """JD (UTC) of now; the same value as astropy's `Time.now().jd`, without importing astropy."""
    return time.time() / 86400.0 + UNIX_EPOCH_JD


def datetime_to_jd(dt: datetime) -> float:
    """JD of a datetime (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp() / 86400.0 + UNIX_EPOCH_JD


def jd_to_datetime(jd: float) -> datetime:
    """Aware UTC datetime of a (finite) JD."""
    return datetime.fromtimestamp((jd - UNIX_EPOCH_JD) * 86400.0, tz=timezone.utc)


def parse_time(value: str | float) -> float:
    """A JD from a number ("2460229.93") or an ISO date/datetime ("2023-10-12", "2023-10-12T10:25:00Z")."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime_to_jd(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"not a JD or an ISO date: {value!r}") from None
