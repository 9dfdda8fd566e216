"""Fault injection shared by the local Kowalski and SkyPortal stand-ins. All faults are off by default.

Two ways to inject:
- rates (`error_rate`, `throttle_rate`, `timeout_rate`, `latency_s`): random, seeded, for soak-style tests;
- a script: `Faults.push("500", "429", "timeout_after", ...)` queues faults for the next requests
  (optionally only those `match` names), for exact tests. `match` is exact: "POST /api/sources" is that
  endpoint only, never "POST /api/sources/<id>/comments"; a prefix must say so with a trailing "*"
  ("POST /api/sources/*", "GET *"). A trailing "/" of the request path is ignored.

Fault kinds:
- "500" / "502" / "503" / any status as a string: answer that status without processing the request;
- "429": answer 429 with `Retry-After` (seconds) without processing;
- "timeout": hang `hang_s` before processing (the client times out; the request is never processed if the
  client gave up -- the server still processes it afterwards, like a slow server would);
- "timeout_after": process the request (commit its effects) then hang `hang_s` before answering;
- "html": answer `status` with an HTML body (what nginx sends for 429/502/504).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Fault:
    kind: str  # "status", "429", "timeout", "timeout_after", "html"
    status: int = 200
    retry_after_s: float = 1.0
    hang_s: float = 0.0


@dataclass
class Faults:
    latency_s: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    throttle_rate: float = 0.0
    retry_after_s: float = 1.0
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _script: deque = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._script = deque()
        self._lock = threading.Lock()

    def push(self, *kinds: str, match: str | None = None) -> None:
        """Queue faults for the next requests `match` names: "METHOD /path" exactly, or a prefix ending in "*"."""
        if match is not None and not (match.endswith("*") or " /" in match):
            raise ValueError(f"match must be 'METHOD /path' or a prefix ending in '*', not {match!r}")
        with self._lock:
            for k in kinds:
                self._script.append((k, match))

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
        self.latency_s = self.error_rate = self.throttle_rate = self.timeout_rate = 0.0

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def _from_kind(self, kind: str) -> Fault:
        if kind == "429":
            return Fault("429", status=429, retry_after_s=self.retry_after_s)
        if kind in ("timeout", "timeout_after"):
            return Fault(kind, hang_s=self.hang_s)
        if kind.startswith("html"):
            status = int(kind.split(":", 1)[1]) if ":" in kind else 502
            return Fault("html", status=status)
        return Fault("status", status=int(kind))

    def decide(self, method: str, path: str) -> Fault | None:
        """The fault for this request, or None. Called once per request by the servers."""
        key = f"{method.upper()} {path.rstrip('/') or '/'}"
        with self._lock:
            for i, (kind, match) in enumerate(self._script):
                if _matches(match, key):
                    del self._script[i]
                    return self._from_kind(kind)
            r = self._rng.random()
        if r < self.error_rate:
            return Fault("status", status=self._rng.choice(self.error_statuses))
        r -= self.error_rate
        if r < self.throttle_rate:
            return Fault("429", status=429, retry_after_s=self.retry_after_s)
        r -= self.throttle_rate
        if r < self.timeout_rate:
            return Fault("timeout", hang_s=self.hang_s)
        return None


def _matches(match: str | None, key: str) -> bool:
    """None matches every request; "X*" every request starting with X; anything else that request only."""
    if match is None:
        return True
    if match.endswith("*"):
        return key.startswith(match[:-1])
    return key == (match.rstrip("/") if not match.endswith(" /") else match)


HTML_ERROR = (
    "<html>\r\n<head><title>{status} Error</title></head>\r\n<body>\r\n<center><h1>{status} Error</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def faults_from_args(args) -> Faults:
    return Faults(latency_s=args.latency_ms / 1000.0, error_rate=args.error_rate, throttle_rate=args.throttle_rate,
                  timeout_rate=args.timeout_rate, hang_s=args.hang_s, seed=args.fault_seed)


def wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT (a stand-in's command line serving until it is told to stop)."""
    import signal

    done = threading.Event()
    old = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not done.wait(0.2):
            pass
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
