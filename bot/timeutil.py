"""Julian Dates (UTC) and the date formats the command line accepts.

`--since`/`--until` take an ISO date or datetime (UTC unless it says otherwise: `2023-10-05`,
`2023-10-05T10:37:55Z`), a JD (`2460222.5`, or `jd:2460222.5`) or an MJD written as such (`mjd:60222`).
A bare number that is not a plausible JD of the ZTF era (2000-01-01 .. 2100-01-01) is refused: an MJD
taken as a JD would query all of history.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

UNIX_EPOCH_JD = 2440587.5
MJD_OFFSET = 2400000.5
PLAUSIBLE_JD = (2451544.5, 2488069.5)  # 2000-01-01 .. 2100-01-01 UTC
TIME_FORMATS = "an ISO date (2023-10-05, 2023-10-05T10:37:55Z), a JD (2460222.5) or an MJD (mjd:60222)"


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


def utc_text(jd: float | None) -> str:
    """A JD as people read it: "2023-10-05 10:37:55 UTC" ("-" for None)."""
    if jd is None:
        return "-"
    t = jd_to_datetime(jd)  # to the nearest second: a JD's float carries ~20 us of noise (16:00:00 not 15:59:59)
    return (t + timedelta(microseconds=500_000)).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(value: str | float) -> float:
    """A JD from a number ("2460229.93", "jd:2460229.93"), an MJD ("mjd:60229.43") or an ISO
    date/datetime ("2023-10-12", "2023-10-12T10:25:00Z")."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    prefix, _, rest = text.partition(":")
    if prefix.lower() in ("mjd", "jd") and rest:
        try:
            number = float(rest)
        except ValueError:
            raise ValueError(f"not a number after {prefix}: {value!r}") from None
        return number + MJD_OFFSET if prefix.lower() == "mjd" else number
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime_to_jd(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"not a JD or an ISO date: {value!r}") from None


def parse_cli_time(value: str) -> float:
    """`parse_time` for the command line: also refuses non-finite values and implausible JDs."""
    try:
        jd = parse_time(value)
    except ValueError:
        raise ValueError(f"{value!r} is not {TIME_FORMATS}") from None
    if not math.isfinite(jd) or not PLAUSIBLE_JD[0] <= jd < PLAUSIBLE_JD[1]:
        hint = f"; an MJD? write mjd:{value}" if math.isfinite(jd) and 0 < jd < 100000 else ""
        raise ValueError(f"{value!r} is not a plausible JD (2000-2100 is {PLAUSIBLE_JD[0]:.1f}-"
                         f"{PLAUSIBLE_JD[1]:.1f}){hint}")
    return jd


def check_window(since_jd: float | None, until_jd: float | None, now_jd: float | None = None,
                 slack_days: float = 1.0) -> None:
    """Refuse a reversed window and times beyond now (+ `slack_days`): ValueError naming the option."""
    now_jd = utc_now_jd() if now_jd is None else now_jd
    for name, jd in (("--since", since_jd), ("--until", until_jd)):
        if jd is not None and jd > now_jd + slack_days:
            raise ValueError(f"{name} {jd_to_datetime(jd):%Y-%m-%d %H:%M} UTC is in the future")
    if since_jd is not None and until_jd is not None and not since_jd < until_jd:
        raise ValueError(f"--since ({since_jd:.5f}) must be before --until ({until_jd:.5f})")


PALOMAR_TZ = "America/Los_Angeles"


def palomar_night(at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the Palomar night `at` falls in: local noon to the next local noon (UTC datetimes)."""
    from datetime import time as dtime
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(PALOMAR_TZ)
    local = at.astimezone(tz)
    day = local.date() if local.hour >= 12 else local.date() - timedelta(days=1)
    start = datetime.combine(day, dtime(12), tz)
    end = datetime.combine(day + timedelta(days=1), dtime(12), tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
