"""The bot's BOOM client: a small client of BOOM's main API over `requests`, in the style of the Kowalski
client, with the project's retry loop (`bot.retry`).

Why not `boom-client` (PyPI 0.2.0): it is young (0.2.0, on httpx), pages with skip/limit (it re-scans
skipped rows, where keyset paging on `_id` does not), and calls endpoints the released server does not have
(`POST /surveys/{survey}/cutouts`). What this client does, as BOOM's code answers (docs/contracts.md):

- `POST /auth` form-encoded -> a bearer token with `expires_in`; it logs in again 60 s before the expiry,
  and once more on a 401 (a restarted server forgets its tokens);
- every answer is checked by status first; JSON is read only when the answer says it is JSON (BOOM's
  actix and its proxy answer text/plain for auth, body and rate-limit errors);
- transient: no answer (connection refused, timeout), 429, 502, 503, 504 -- retried with back-off,
  `Retry-After` honoured; a 500 is Mongo refusing the query and a 400/404 a wrong request: raised at once,
  never retried (as boom-client does);
- every find sends `limit` and `max_time_ms` (the guardrails branch requires a limit; the server has no
  time limit of its own);
- at most `max_requests_per_s` requests per second leave the client (a token bucket, `bot.ratelimit`; BOOM's
  proxy answers 429 beyond 50/s per client), and `concurrently` runs up to `max_threads` calls at once (the
  poller's document, cutout and history queries), logging in once for all of them;
- the password and the token never appear in errors or logs; HTTP requests are counted (`requests`).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

import orjson
import requests

from bot.boom.documents import STAMPS, stamp_bytes
from bot.ratelimit import RateLimiter
from bot.redaction import redact
from bot.retry import no_answer, retrying

log = logging.getLogger(__name__)

TRANSIENT = frozenset({429, 502, 503, 504})  # BOOM's 500 is a query error: not retried
REQUIRED_CATALOGS = ("ZTF_alerts", "ZTF_alerts_aux")
RENEW_EARLY_S = 60.0
RATE_BURST = 20  # requests back to back before the bucket spaces them; BOOM's proxy allows a burst of 200


class BoomError(RuntimeError):
    """A BOOM call that failed. `transient` is True when retrying later may succeed; `status` the HTTP one."""

    def __init__(self, message: str, transient: bool = False, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.transient, self.status, self.retry_after_s = transient, status, retry_after_s


def _message(resp: requests.Response) -> str:
    if (resp.headers.get("Content-Type") or "").startswith("application/json"):
        try:
            body = resp.json()
        except ValueError:
            return resp.text[:300]
        if isinstance(body, dict):
            return str(body.get("message") or body.get("error_description") or body)[:300]
    return resp.text[:300] or resp.reason or ""


class BoomClient:
    """A connection to one BOOM API (see the module docstring)."""

    def __init__(self, url: str, username: str | None, password: str | None, *, timeout_s: float = 30.0,
                 max_time_ms: int = 25000, retries: int = 3, backoff_s: float = 1.0,
                 max_requests_per_s: float | None = 40.0, max_threads: int = 4,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        if not username or not password:
            raise BoomError("no BOOM credentials (BOOM_USERNAME and BOOM_PASSWORD, or boom.username/password)")
        self.url = url.rstrip("/")
        self._username, self._password = username, password
        self.timeout_s, self.max_time_ms = float(timeout_s), int(max_time_ms)
        self.retries, self.backoff_s, self.sleep = int(retries), float(backoff_s), sleep
        self.requests = 0
        self.max_threads = max(1, int(max_threads))
        self._limiter = RateLimiter(max_requests_per_s, burst=RATE_BURST, clock=clock, sleep=sleep)
        self._token: str | None = None
        self._expires = 0.0
        self.has_cutout_catalog = False  # ZTF_alerts_cutouts served (cutouts kept in MongoDB): set by connect()
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["Accept-Encoding"] = "gzip"

    # ---- plumbing ----------------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        return [s for s in (self._password, self._token) if s]

    def _send(self, method: str, path: str, **kw) -> requests.Response:
        self._limiter.acquire()
        with self._lock:
            self.requests += 1
        try:
            return self._session.request(method, self.url + path, timeout=self.timeout_s, **kw)
        except requests.RequestException as exc:
            raise BoomError(f"cannot reach BOOM at {self.url} (boom.url): {no_answer(exc)}", transient=True) from None

    def _check(self, resp: requests.Response, path: str) -> Any:
        if resp.status_code == 200:
            try:  # orjson: a night of cutouts is ~100 MB of byte arrays; 2x faster than json
                return orjson.loads(resp.content)
            except ValueError:
                raise BoomError(f"{path}: BOOM answered 200 with a body that is not JSON", transient=True) from None
        after = resp.headers.get("Retry-After")
        raise BoomError(redact(f"{path}: HTTP {resp.status_code}: {_message(resp)}", self._secrets()),
                        transient=resp.status_code in TRANSIENT, status=resp.status_code,
                        retry_after_s=float(after) if after and after.isdigit() else None)

    def login(self) -> None:
        resp = self._send("POST", "/auth", data={"username": self._username, "password": self._password})
        if resp.status_code == 401:
            raise BoomError(f"BOOM at {self.url} refused the username or password ({_message(resp)})", status=401)
        body = self._check(resp, "/auth")
        self._token = body["access_token"]
        self._expires = time.monotonic() + float(body.get("expires_in", 604800)) - RENEW_EARLY_S
        self._session.headers["Authorization"] = f"Bearer {self._token}"

    def _ensure_token(self, stale: str | None = None) -> None:
        """Log in when there is no token, it is about to expire, or it is `stale` (refused with a 401); one
        thread logs in while the others wait for its token."""
        with self._login_lock:
            if self._token is None or self._token == stale or time.monotonic() >= self._expires:
                self.login()

    def call(self, method: str, path: str, *, json: Mapping | None = None, params: Mapping | None = None,
             attempts: int | None = None) -> Any:
        """One API call with login, one re-login on 401 and retries of transient failures (`attempts`,
        default retries + 1); returns `data`."""
        def attempt():
            self._ensure_token()
            token = self._token
            resp = self._send(method, path, json=json, params=params)
            if resp.status_code == 401:  # expired or forgotten token: log in again, once
                self._ensure_token(stale=token)
                resp = self._send(method, path, json=json, params=params)
            return self._check(resp, path)

        attempts = self.retries + 1 if attempts is None else attempts
        body = retrying(attempt, attempts=attempts, backoff_s=self.backoff_s, sleep=self.sleep,
                        wait_hint=lambda exc: getattr(exc, "retry_after_s", None),
                        on_retry=lambda exc, i, wait: log.info("BOOM: %s; retry in %.1f s", exc, wait))
        return body.get("data") if isinstance(body, dict) else body

    # ---- the calls the bot makes -------------------------------------------------------------------
    def connect(self) -> "BoomClient":
        """Log in and check that the ZTF catalogs are served; raises BoomError. One retry only: an
        unreachable BOOM is said in seconds at start (the supervisor starts again later)."""
        names = {c.get("name") for c in self.call("GET", "/catalogs", attempts=min(2, self.retries + 1)) or []}
        missing = [c for c in REQUIRED_CATALOGS if c not in names]
        if missing:
            raise BoomError(f"BOOM at {self.url} does not serve {', '.join(missing)}")
        self.has_cutout_catalog = "ZTF_alerts_cutouts" in names
        return self

    def find(self, catalog: str, filter: Mapping, projection: Mapping | None = None, *,
             sort: Mapping | None = None, limit: int, skip: int | None = None) -> list[dict]:
        body: dict = {"catalog_name": catalog, "filter": dict(filter), "limit": int(limit),
                      "max_time_ms": self.max_time_ms}
        if projection is not None:
            body["projection"] = dict(projection)
        if sort is not None:
            body["sort"] = dict(sort)
        if skip:
            body["skip"] = int(skip)
        return list(self.call("POST", "/queries/find", json=body) or [])

    def pipeline(self, catalog: str, stages: list[Mapping]) -> list[dict]:
        """`POST /queries/pipeline`: an aggregation on `catalog` (the bot's: a `$match` and a `$lookup`)."""
        body = {"catalog_name": catalog, "pipeline": [dict(s) for s in stages], "max_time_ms": self.max_time_ms}
        return list(self.call("POST", "/queries/pipeline", json=body) or [])

    def cutouts(self, candid: int) -> dict[str, bytes | None]:
        """The three stamps of one alert (gzipped FITS bytes); None for each when BOOM has none (404)."""
        try:
            data = self.call("GET", "/surveys/ztf/cutouts", params={"candid": int(candid)}) or {}
        except BoomError as exc:
            if exc.status == 404:
                return {k: None for k in STAMPS}
            raise
        return {k: stamp_bytes(data.get(k)) for k in STAMPS}

    def concurrently(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run `calls` (each one API call, e.g. a `find`) up to `max_threads` at a time; their results in order.
        The first failure is raised once all have finished."""
        if len(calls) <= 1 or self.max_threads == 1:
            return [c() for c in calls]
        self._ensure_token()  # log in once, before the threads start
        with ThreadPoolExecutor(max_workers=min(self.max_threads, len(calls)), thread_name_prefix="boom") as pool:
            futures = [pool.submit(c) for c in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._session.close()
