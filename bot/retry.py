"""Retrying transient failures with exponential back-off: the one loop the Kowalski client and the
SkyPortal transport share, and the one table of transient HTTP statuses.

Transient HTTP statuses (worth the same request again later): 408 Request Timeout (the server or a
proxy gave up waiting for the request), 429 Too Many Requests, 500, 502, 503, 504 (SkyPortal's nginx
and tornado answer these while overloaded or restarting; skyportal-api.md 0.5). Every other status is a
permanent answer to this request (fix the request, the token or the configuration): it is not retried
and not reported as transient. `Retry-After` is honoured on 429 and 503.
"""

from __future__ import annotations

import math
from typing import Callable, TypeVar

__all__ = ["RETRY_AFTER_STATUSES", "TRANSIENT_HTTP_STATUSES", "is_transient_status", "retrying"]

T = TypeVar("T")

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})


def is_transient_status(status: int | None) -> bool:
    """No response at all (timeout, connection refused) or a status of the table."""
    return status is None or status in TRANSIENT_HTTP_STATUSES


def retrying(
    attempt: Callable[[], T],
    *,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None],
    max_backoff_s: float = math.inf,
    wait_hint: Callable[[BaseException], float | None] = lambda exc: None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Call `attempt` up to `attempts` times. An exception whose `transient` attribute is true is retried
    after `wait_hint(exc)` seconds if it gives one, else `backoff_s * 2**i` (at most `max_backoff_s`);
    `on_retry(exc, i, wait)` is called before each wait. Any other exception, or the last transient one,
    propagates unchanged."""
    for i in range(max(1, int(attempts))):
        try:
            return attempt()
        except Exception as exc:
            if not getattr(exc, "transient", False) or i + 1 >= attempts:
                raise
            wait = wait_hint(exc)
            if wait is None:
                wait = min(backoff_s * (2**i), max_backoff_s)
            if on_retry is not None:
                on_retry(exc, i, wait)
            if wait > 0:
                sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
