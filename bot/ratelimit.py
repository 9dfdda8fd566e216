"""A client-side rate limit: the token bucket that keeps the bot under a service's request rate (Fritz's
nginx 5 r/s per token; BOOM's proxy 50 r/s per client), shared by the SkyPortal and BOOM clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Thread-safe token bucket: ``rate`` requests per second, at most ``burst`` back to back.

    Each ``acquire()`` reserves a slot under the lock and sleeps (outside the lock) until it is due,
    so concurrent callers are spaced ``1/rate`` apart once the burst is spent. ``rate`` <= 0 or None
    disables limiting.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int = 2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate) if rate else 0.0
        self.burst = max(1, int(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def acquire(self) -> float:
        """Take one slot; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait
