"""The simulated clock shared by the local Kowalski and SkyPortal stand-ins.

Time is a Julian Date (JD, UTC). A clock either
- is unbounded (`start_jd=None`): `now_jd()` is +inf, i.e. "everything has already happened";
- runs from `start_jd` at `speed` simulated days per real day (1.0 = real time, 3600 = one hour per second);
- or is stepped (`speed=0`): it only moves when `set()` / `advance()` are called.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timezone

from bot.timeutil import datetime_to_jd, jd_to_datetime, parse_time  # noqa: F401 (re-exported)


class SimClock:
    """A thread-safe simulated clock (see module docstring)."""

    def __init__(self, start_jd: float | None = None, speed: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._anchor_jd = None if start_jd is None else float(start_jd)
        self._anchor_t = time.monotonic()
        self._speed = float(speed)

    def _now_locked(self) -> float:
        if self._anchor_jd is None:
            return math.inf
        return self._anchor_jd + (time.monotonic() - self._anchor_t) * self._speed / 86400.0

    def now_jd(self) -> float:
        with self._lock:
            return self._now_locked()

    def now_datetime(self) -> datetime:
        """The simulated time as an aware UTC datetime (the real time when the clock is unbounded)."""
        jd = self.now_jd()
        return datetime.now(timezone.utc) if math.isinf(jd) else jd_to_datetime(jd)

    @property
    def unbounded(self) -> bool:
        with self._lock:
            return self._anchor_jd is None

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        with self._lock:  # re-anchor so that the change does not jump the clock
            if self._anchor_jd is not None:
                self._anchor_jd = self._now_locked()
            self._anchor_t = time.monotonic()
            self._speed = float(value)

    def set(self, jd: float | None) -> None:
        """Jump to `jd` (None: back to unbounded). The clock keeps running at `speed` from there."""
        with self._lock:
            self._anchor_jd = None if jd is None else float(jd)
            self._anchor_t = time.monotonic()

    def advance(self, days: float) -> float:
        """Move forward by `days` simulated days; returns the new time (a no-op on an unbounded clock)."""
        with self._lock:
            if self._anchor_jd is not None:
                self._anchor_jd = self._now_locked() + float(days)
                self._anchor_t = time.monotonic()
            return self._now_locked()

    def __repr__(self) -> str:
        return f"SimClock(now_jd={self.now_jd()!r}, speed={self._speed!r})"
