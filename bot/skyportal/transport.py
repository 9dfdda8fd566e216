"""The HTTP transport of the bot's SkyPortal (Fritz) client: auth, rate limit, decoding, retries.

The contract is ``docs/contracts.md`` (cited below as SP <section>):

- ``Authorization: token <token>`` on every call (SP 0.1); the token never appears in logs,
  exceptions, reprs or returned data.
- Envelope ``{"status": "success"|"error", "data", "message"}`` (SP 0.2); 429/502/503/504 bodies
  may be nginx HTML (SP 0.5), so bodies are parsed defensively.
- Client-side token bucket (Fritz's nginx allows 5 r/s per token, SP 0.5).
- Retries with exponential backoff only for idempotent calls (GET, PUT, POST /api/sources, POST
  comments and annotations, which the server dedupes or makes unique) on connection
  errors/timeouts and the transient statuses of :mod:`bot.retry` (408/429/500/502/503/504),
  honouring ``Retry-After`` on 429/503.
  ``POST /api/followup_request`` is never retried (SP 7.2): its outcome is reported instead.

The endpoint methods are :class:`bot.skyportal.client.SkyPortalClient`'s (its groups of calls are
in :mod:`bot.skyportal.sources` and :mod:`bot.skyportal.followups`); it holds a :class:`Transport`.
"""

from __future__ import annotations

import html
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import requests

from bot.ratelimit import RateLimiter
from bot.redaction import redact
from bot.retry import RETRY_AFTER_STATUSES, no_answer, retrying
from bot.skyportal.errors import SkyPortalError

__all__ = [
    "Transport",
    "raw_error_text",
]

log = logging.getLogger(__name__)


def raw_error_text(r: "_Response") -> str:
    """The answer's error text as the server wrote it: to interpret, never to show (see error_text)."""
    if r.envelope is not None:
        msg = r.envelope.get("message")
        return str(msg) if msg else f"status={r.envelope.get('status')!r}"
    return _describe_non_json(r.status, r.text)


# ------------------------------------------------------------------------------------------------
# transport
# ------------------------------------------------------------------------------------------------
class _Response:
    """A decoded HTTP answer: status, JSON envelope (or None) and a short text for errors."""

    __slots__ = ("status", "envelope", "text", "retry_after")

    def __init__(self, status: int, envelope: dict | None, text: str, retry_after: float | None):
        self.status = status
        self.envelope = envelope
        self.text = text
        self.retry_after = retry_after


class Transport:
    """Authenticated, rate-limited JSON exchanges with one SkyPortal server; holds the secret token.

    See the module docstring for the transport rules. ``sleep`` and ``clock`` are injectable (the
    rate limiter and the retry backoff use them) so tests never really wait. Built by
    :class:`~bot.skyportal.client.SkyPortalClient`, whose constructor holds the defaults.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float,
        followup_timeout_s: float,
        rate_limit_per_s: float | None,
        rate_limit_burst: int,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        max_retry_after_s: float,
        session: requests.Session | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("SkyPortal url must start with http:// or https://")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("SkyPortal token is empty")
        if any(c.isspace() for c in token.strip()):
            raise ValueError("SkyPortal token must not contain whitespace")
        if "token" in token:
            # SkyPortal strips the word with header.replace("token", "") (SP 0.1): it could never match
            raise ValueError("a SkyPortal token containing the word 'token' cannot authenticate")
        self.url = url.rstrip("/")
        self.__token = token.strip()
        self.timeout_s = float(timeout_s)
        self.followup_timeout_s = float(followup_timeout_s)
        self.max_retries = max(0, int(max_retries))
        self.backoff_s = max(0.0, float(backoff_s))
        self.max_backoff_s = float(max_backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._limiter = RateLimiter(rate_limit_per_s, rate_limit_burst, clock=clock, sleep=sleep)

    # -- hygiene ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, token=<redacted>)"

    __str__ = __repr__

    def __getstate__(self):
        raise TypeError(f"{type(self).__name__} holds a secret token and cannot be pickled")

    def redact(self, text: Any) -> str:
        return redact(text, (self.__token,), "<redacted>")

    def is_token(self, value: Any) -> bool:
        """Whether ``value`` is this transport's token (without ever exposing the token)."""
        return value == self.__token

    def scrub(self, obj: Any) -> Any:
        """Deep copy of decoded JSON with any occurrence of the token replaced."""
        if isinstance(obj, dict):
            return {k: self.scrub(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.scrub(v) for v in obj]
        if isinstance(obj, str):
            return self.redact(obj)
        return obj

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------
    def send(self, method: str, path: str, params: Mapping | None, body: Any, timeout: float) -> _Response:
        """One HTTP exchange (rate limited). Raises requests exceptions on transport failures."""
        self._limiter.acquire()
        headers = {"Authorization": f"token {self.__token}", "Accept": "application/json"}
        t0 = time.monotonic()
        resp = self._session.request(
            method,
            self.url + path,
            params=params,
            json=body if body is not None else None,
            headers=headers,
            timeout=timeout,
        )
        try:
            status = resp.status_code
            raw = resp.text or ""
            envelope: dict | None = None
            try:
                parsed = resp.json()
                envelope = parsed if isinstance(parsed, dict) else None
            except ValueError:
                envelope = None
            retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
        finally:
            resp.close()
        log.debug("%s %s -> %s in %.3fs", method, path, status, time.monotonic() - t0)
        return _Response(status, envelope, raw, retry_after)

    def error_text(self, r: _Response) -> str:
        """The answer's error text, the token masked (what may leave the process)."""
        return self.redact(raw_error_text(r))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping | None = None,
        body: Any = None,
        retry: bool,
        unmasked: bool = False,
        retries: int | None = None,
    ) -> Any:
        """Send with retries (if ``retry``: ``retries``, default ``max_retries``) and return the envelope's ``data`` (the token masked out of it;
        ``unmasked``: as the server sent it, for a caller that only reads it and returns none of its text);
        raise SkyPortalError."""
        attempts = 1 + ((self.max_retries if retries is None else retries) if retry else 0)

        def once() -> Any:
            failure = None  # raised outside the except block: the token-bearing exception is not chained
            try:
                r = self.send(method, path, params, body, self.timeout_s)
            except requests.RequestException as exc:
                failure = SkyPortalError(None, self.redact(no_answer(exc)), method, path,
                                         transient=isinstance(exc, (requests.Timeout, requests.ConnectionError)))
            if failure is not None:
                raise failure
            if r.status == 200 and r.envelope is not None and r.envelope.get("status") == "success":
                data = r.envelope.get("data")
                return data if unmasked else self.scrub(data)
            if r.status == 200 and r.envelope is None:  # a 200 that is not JSON: a proxy page, not SkyPortal
                raise SkyPortalError(200, self.error_text(r), method, path, transient=True)
            msg, raw = self.error_text(r), raw_error_text(r)
            if r.status == 401:
                msg = f"the SkyPortal token was refused or lacks an ACL (HTTP 401): {msg}"
            err = SkyPortalError(r.status, msg, method, path, data=self.scrub(r.envelope), raw=raw)
            if r.status in RETRY_AFTER_STATUSES and r.retry_after is not None:
                err.retry_after = min(r.retry_after, self.max_retry_after_s)
            raise err

        def warn(err: BaseException, i: int, wait: float) -> None:
            log.warning("SkyPortal %s %s failed (%s); retry %d/%d in %.1fs",
                        method, path, getattr(err, "message", "?"), i + 1, attempts - 1, wait)

        try:
            return retrying(once, attempts=attempts, backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s,
                            sleep=self._sleep, wait_hint=lambda e: getattr(e, "retry_after", None), on_retry=warn)
        except SkyPortalError as err:
            if err.transient and attempts > 1:
                err.message = f"{err.message} (after {attempts} attempts)"
                err.args = (str(err),)
            raise




# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        v = float(str(value).strip())
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
    if not math.isfinite(v) or v < 0:
        return None
    return v


def _describe_non_json(status: int, text: str) -> str:
    t = (text or "").strip()
    if not t:
        return f"HTTP {status} with an empty body"
    m = re.search(r"<title>(.*?)</title>", t, re.I | re.S)
    if m:
        snippet = html.unescape(m.group(1)).strip()
    else:
        snippet = re.sub(r"<[^>]+>", " ", t)
        snippet = re.sub(r"\s+", " ", snippet).strip()[:200]
    return f"HTTP {status} with a non-JSON body (proxy/nginx?): {snippet!r}"
