"""Retrying transient failures with exponential back-off: the one loop the Kowalski client and the
SkyPortal transport share, and the one table of transient HTTP statuses.

Transient HTTP statuses (worth the same request again later): 408 Request Timeout (the server or a
proxy gave up waiting for the request), 429 Too Many Requests, 500, 502, 503, 504 (SkyPortal's nginx
and tornado answer these while overloaded or restarting; docs/contracts.md, SP 0.5). Every other status is a
permanent answer to this request (fix the request, the token or the configuration): it is not retried
and not reported as transient. `Retry-After` is honoured on 429 and 503.
"""

from __future__ import annotations

import math
from typing import Callable, TypeVar

__all__ = ["RETRY_AFTER_STATUSES", "TRANSIENT_HTTP_STATUSES", "is_transient_status", "no_answer", "retrying"]

T = TypeVar("T")

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})


_NO_ANSWER = (  # (text in the exception chain, what an operator reads)
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("Temporary failure in name resolution", "host not found (DNS)"),
    ("No route to host", "no route to host"),
    ("Network is unreachable", "network unreachable"),
    ("Connection reset", "connection reset"),
    ("RemoteDisconnected", "connection closed by the server"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
)


# what no_answer says when nothing answered at all (no server there), unlike a cut or refused conversation
UNREACHABLE = frozenset({"connection refused", "host not found", "host not found (DNS)", "no route to host",
                         "network unreachable", "connect timed out"})


def no_answer(exc: BaseException) -> str:
    """Why a request got no HTTP answer, in a few words ("connection refused", "timed out", ...) instead
    of urllib3's nested repr; falls back to the exception's type and text."""
    import requests

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out waiting for the answer"
    for needle, words in _NO_ANSWER:
        if needle in text:
            return words
    return text


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
