"""The bot's Kowalski client: a thin, explicit wrapper around penquins 2.4.2.

What it adds to penquins (see docs/contracts.md, KW 7):
- errors are data in penquins: every response's `status` is checked; a query Kowalski rejects (HTTP 400,
  e.g. a bad projection) raises `KowalskiError` at once;
- transient failures (`requests` exceptions, non-JSON bodies, 5xx-like error messages, Mongo timeouts)
  are retried here with exponential backoff; penquins' own urllib3 retries are kept low (1 retry) so
  that the total time of a failing call stays bounded and visible;
- `connect()` checks that the token was accepted (penquins silently caches an empty catalog list when
  it is not), that `ZTF_alerts` and `ZTF_alerts_aux` are served, and that `ping()` answers;
- `max_time_ms` (server-side abort) is validated to be below the client timeout, so that Kowalski gives
  up on a slow query before the client re-sends it;
- the token and password never appear in exceptions or logs;
- HTTP requests are counted (`client.requests`), penquins' internal retries included.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import requests
from penquins import Kowalski

import bot.kowalski.queries as Q
from bot.redaction import redact
from bot.retry import UNREACHABLE, no_answer, retrying

log = logging.getLogger(__name__)

INSTANCE = "default"  # penquins' key for a plainly constructed client
REQUIRED_CATALOGS = (Q.ALERTS, Q.AUX)

# "status": "error" messages that mean "try again later", not "your query is wrong". Kowalski answers
# query failures with HTTP 400 "<ExceptionClass>: <text>"; Mongo timeouts/reconnects are transient,
# and gateways/servers answer 5xx with these phrases.
TRANSIENT_MARKERS = (
    "ExecutionTimeout", "NetworkTimeout", "AutoReconnect", "ServerSelectionTimeout", "NotPrimary",
    "ConnectionFailure", "Internal Server Error", "Bad Gateway", "Service Unavailable", "Gateway Timeout",
    "Too Many Requests", "auth failed", "timed out", "Temporarily Unavailable",
)


class KowalskiError(RuntimeError):
    """A Kowalski call that failed. `transient` is True when retrying later may succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def is_transient_message(message: str) -> bool:
    text = str(message)
    if text[:3].isdigit() and text[0] == "5":  # "503: Service Unavailable" style
        return True
    return any(m.lower() in text.lower() for m in TRANSIENT_MARKERS)


class KowalskiClient:
    """A connection to one Kowalski instance (see module docstring).

    >>> k = KowalskiClient(protocol="http", host="127.0.0.1", port=4000, token="...").connect()
    >>> k.find("ZTF_alerts", {"candid": {"$lt": 0}}, limit=1)
    []
    """

    def __init__(
        self,
        protocol: str = "https",
        host: str = "kowalski.caltech.edu",
        port: int = 443,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        max_time_ms: int = 8000,
        retries: int = 3,
        backoff_s: float = 1.0,
        penquins_retries: int = 1,
        penquins_backoff_factor: float = 0.1,
        max_threads: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if token is None and username is None:
            token = os.environ.get("KOWALSKI_TOKEN") or None
        if token is None and (username is None or password is None):
            raise KowalskiError("Kowalski credentials missing: give a token (or KOWALSKI_TOKEN) "
                                "or a username and password")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if not (isinstance(max_time_ms, int) and 1 <= max_time_ms < timeout_s * 1000):
            raise ValueError(f"max_time_ms ({max_time_ms}) must be an int >= 1 and below the client timeout "
                             f"({timeout_s * 1000:.0f} ms), so that Kowalski aborts a slow query first")
        if retries < 0 or penquins_retries < 0:
            raise ValueError("retries must be >= 0")
        self.protocol, self.host, self.port = protocol, host, int(port)
        self._token, self._username, self._password = token, username, password
        self.timeout_s = float(timeout_s)
        self.max_time_ms = int(max_time_ms)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.penquins_retries = int(penquins_retries)
        self.penquins_backoff_factor = float(penquins_backoff_factor)
        self.max_threads = max(1, int(max_threads))
        self._sleep = sleep
        self._k: Kowalski | None = None
        self._count_lock = threading.Lock()
        self.requests = 0  # HTTP requests sent (penquins' internal retries included)
        self.catalogs: list[str] = []

    # ---- helpers -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"

    def __repr__(self) -> str:  # never shows credentials
        return f"KowalskiClient({self.url}, connected={self._k is not None})"

    def _scrub(self, text: Any) -> str:
        return redact(text, (self._token, self._password))

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.requests += n

    def _instrument(self, session: requests.Session) -> None:
        """Count every HTTP request the session sends, including urllib3's retries."""
        send = session.send

        def counting_send(request, **kwargs):
            try:
                resp = send(request, **kwargs)
            except requests.exceptions.RequestException:
                self._count(1 + self.penquins_retries)  # urllib3 gave up after its retries
                raise
            retries = getattr(getattr(resp, "raw", None), "retries", None)
            self._count(1 + len(getattr(retries, "history", ()) or ()))
            return resp

        session.send = counting_send

    def _retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run fn, retrying transient failures with exponential backoff; raise KowalskiError at the end."""
        attempts = self.retries + 1

        def once() -> Any:
            try:
                return fn()
            except json.JSONDecodeError as exc:  # a proxy's HTML page, a 413 text body, a cut connection
                raise KowalskiError(f"{what}: Kowalski at {self.url} sent a body that is not JSON ({exc})",
                                    transient=True) from None
            except requests.exceptions.RequestException as exc:
                raise KowalskiError(f"{what}: cannot reach Kowalski at {self.url} (kowalski.host/port): "
                                    f"{self._scrub(no_answer(exc))}", transient=True) from None

        def warn(err: BaseException, i: int, delay: float) -> None:
            log.warning("%s (attempt %d/%d), retrying in %.1f s", err, i + 1, attempts, delay)

        try:
            return retrying(once, attempts=attempts, backoff_s=self.backoff_s, sleep=self._sleep,
                            on_retry=warn)
        except KowalskiError as err:
            if not err.transient:
                raise
            raise KowalskiError(f"{err} (gave up after {attempts} attempts)", transient=True) from None

    def _require(self) -> Kowalski:
        if self._k is None:
            raise KowalskiError("KowalskiClient is not connected: call connect() first")
        return self._k

    # ---- connection --------------------------------------------------------------------------------
    def connect(self) -> KowalskiClient:
        """Build the penquins client, check the token, the catalogs and ping(). Idempotent."""
        if self._k is not None:
            return self
        kwargs: dict[str, Any] = dict(
            protocol=self.protocol, host=self.host, port=self.port, timeout=self.timeout_s,
            max_retries=self.penquins_retries, backoff_factor=self.penquins_backoff_factor,
            pool_connections=max(10, self.max_threads), pool_maxsize=max(10, self.max_threads),
        )
        if self._token is not None:
            kwargs["token"] = self._token
        else:
            kwargs.update(username=self._username, password=self._password)

        tried = [0]

        def build() -> Kowalski:
            try:
                return Kowalski(**kwargs)
            except ValueError as exc:  # penquins wraps every failure of add() in a ValueError
                cause = exc.__context__
                if isinstance(cause, (requests.exceptions.RequestException, json.JSONDecodeError)):
                    why = no_answer(cause) if isinstance(cause, requests.exceptions.RequestException) else str(cause)
                    tried[0] += 1
                    if why in UNREACHABLE and tried[0] >= 2:  # no server there (not a proxy's 5xx): said quickly, at start
                        raise KowalskiError(f"cannot reach Kowalski at {self.url} (kowalski.host/port): "
                                            f"{self._scrub(why)} (gave up after {tried[0]} attempts)") from None
                    raise KowalskiError(f"cannot reach Kowalski at {self.url} (kowalski.host/port): "
                                        f"{self._scrub(why)}", transient=True) from None
                if "Authentication failed" in str(exc) or "wrong credentials" in str(exc):
                    raise KowalskiError(f"Kowalski at {self.url} refused the username/password: "
                                        f"{self._scrub(exc)}") from None
                raise KowalskiError(f"cannot connect to Kowalski at {self.url}: {self._scrub(exc)}") from None

        k = self._retrying("connect", build)
        self._count(1 if self._token is not None else 2)  # catalog_names (+ auth) sent during construction
        self._instrument(k.instances[INSTANCE]["session"])
        catalogs = list(k.instances[INSTANCE].get("catalogs") or [])
        if not catalogs:
            k.close()
            hint = ("check KOWALSKI_TOKEN / kowalski.token in the configuration" if self._token is not None
                    else "the token issued for the configured user is not accepted")
            raise KowalskiError(f"Kowalski at {self.url} refused the token (empty catalog list): {hint}")
        missing = [c for c in REQUIRED_CATALOGS if c not in catalogs]
        if missing:
            k.close()
            raise KowalskiError(f"Kowalski at {self.url} does not serve {', '.join(missing)} "
                                f"(catalogs: {', '.join(sorted(catalogs)[:20])})")

        def ping() -> bool:
            if not k.ping():
                raise KowalskiError(f"Kowalski at {self.url} did not answer ping", transient=True)
            return True

        try:
            self._retrying("ping", ping)
        except KowalskiError:
            k.close()
            raise
        self._k, self.catalogs = k, catalogs
        log.info("connected to Kowalski at %s (%d catalogs)", self.url, len(catalogs))
        return self

    def close(self) -> None:
        if self._k is not None:
            try:
                self._k.close()
            finally:
                self._k = None

    def __enter__(self) -> KowalskiClient:
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def ping(self) -> bool:
        return bool(self._require().ping())

    # ---- responses ---------------------------------------------------------------------------------
    def _check(self, resp: Any, what: str) -> dict:
        """Raise unless resp is a success response (penquins never raises on Kowalski's errors)."""
        if not isinstance(resp, dict):
            raise KowalskiError(f"{what}: unexpected response from {self.url}: {type(resp).__name__}",
                                transient=True)
        status = resp.get("status")
        if status == "success":
            return resp
        message = self._scrub(resp.get("message", resp))
        if message in ("token is invalid", "token has expired", "Unauthorized"):
            raise KowalskiError(f"{what}: Kowalski at {self.url} refused the token ({message})")
        transient = is_transient_message(message)
        raise KowalskiError(f"{what}: Kowalski at {self.url} answered {status!r}: {message}", transient=transient)

    @staticmethod
    def _describe(body: Mapping) -> str:
        q = body.get("query") or {}
        return f"{body.get('query_type')} on {q.get('catalog') or q.get('catalogs') or q.get('command')}"

    def _penquins(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except json.JSONDecodeError:
            raise
        except (ValueError, KeyError) as exc:  # penquins' client-side validation (e.g. unknown catalog)
            raise KowalskiError(f"{what}: penquins refused the query: {self._scrub(exc)}") from None

    # ---- queries -----------------------------------------------------------------------------------
    def query(self, body: Mapping) -> dict:
        """Send one /api/queries body; returns the checked response dict (status, message, data)."""
        k = self._require()
        what = self._describe(body)

        def once() -> dict:
            result = self._penquins(lambda: k.query(query=dict(body)), what)
            return self._check(result.get(INSTANCE) if isinstance(result, dict) else result, what)

        return self._retrying(what, once)

    def find(self, catalog: str, filter: Mapping, projection: Mapping | None = None, sort=None,
             limit: int | None = None, skip: int | None = None) -> list:
        body = Q.find(catalog, filter, projection, sort=sort, limit=limit, skip=skip, max_time_ms=self.max_time_ms)
        return list(self.query(body).get("data") or [])

    def aggregate(self, catalog: str, pipeline: Sequence[Mapping]) -> list:
        body = Q.aggregate(catalog, pipeline, max_time_ms=self.max_time_ms)
        return list(self.query(body).get("data") or [])

    def batch(self, bodies: Sequence[Mapping]) -> list[dict]:
        """Send several /api/queries bodies concurrently (penquins `use_batch_query=True`).

        Returns the checked response dicts in COMPLETION order (penquins uses imap_unordered): match
        them to the queries by their content (candid / objectId), never by position. A transient failure
        of any query retries the whole batch; a rejected query raises at once.
        """
        bodies = [dict(b) for b in bodies]
        if not bodies:
            return []
        k = self._require()
        for b in bodies:
            b.setdefault("kwargs", {}).setdefault("max_time_ms", self.max_time_ms)
        what = f"batch of {len(bodies)} queries"

        def once() -> list[dict]:
            result = self._penquins(
                lambda: k.query(queries=bodies, use_batch_query=True, max_n_threads=self.max_threads), what)
            resps = result.get(INSTANCE) if isinstance(result, dict) else None
            if not isinstance(resps, list) or len(resps) != len(bodies):
                raise KowalskiError(f"{what}: got {len(resps) if isinstance(resps, list) else resps!r} "
                                    f"responses", transient=True)
            return [self._check(r, what) for r in resps]

        return self._retrying(what, once)
