"""`KowalskiSim`: the stand-in's lifecycle (a loopback HTTP server in a thread), its tokens, clock, faults and
request counts, around the alert database (ingest.py) and the handler (handler.py)."""

from __future__ import annotations

import hmac
import secrets
import threading
from datetime import datetime, timezone

from bot.sim.clock import SimClock
from bot.sim.faults import Faults
from bot.sim.httpd import ServedInThread
from bot.sim.kowalski.auth import jwt_payload, make_jwt, verify_jwt
from bot.sim.kowalski.handler import Handler
from bot.sim.kowalski.ingest import AlertDatabase


class KowalskiSim(ServedInThread):
    """The Kowalski stand-in: a mongomock database behind a loopback HTTP server (see the package docstring)."""

    handler = Handler
    name = "kowalski-sim"
    admin_username = "admin"  # Kowalski's server.admin_username (config.defaults.yaml:14)

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 users: dict[str, str] | None = None, clock: SimClock | None = None,
                 faults: Faults | None = None, broker_model=None) -> None:
        self.host, self.port = host, port
        self.users = dict(users) if users is not None else {"admin": "admin"}
        self.clock = clock if clock is not None else SimClock()
        self.faults = faults if faults is not None else Faults()
        self._secret = secrets.token_hex(32)
        self._token_user = next(iter(self.users), self.admin_username)  # whose self.token it is
        self.token = token or self.issue_token(self._token_user)
        self.request_count = 0
        self.request_counts: dict[str, int] = {}  # "METHOD /path" -> n
        self.alerts = AlertDatabase(broker_model)  # broker_model: see AlertDatabase
        self._count_lock = threading.Lock()
        self._stopping = threading.Event()

    # ---- tokens ------------------------------------------------------------------------------------
    def issue_token(self, username: str) -> str:
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        return make_jwt({"user_id": username, "created_at": created}, self._secret)

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(token, self.token) or verify_jwt(token, self._secret)

    def token_user(self, token: str | None) -> str | None:
        """The user of an accepted token (Kowalski's `request.user`, the JWT's `user_id`)."""
        if token is None:
            return None
        if hmac.compare_digest(token, self.token):
            return self._token_user
        return jwt_payload(token).get("user_id", "")

    # ---- the alert database ------------------------------------------------------------------------
    @property
    def db(self):
        return self.alerts.db

    @property
    def load_errors(self) -> list[tuple[str, str]]:
        return self.alerts.load_errors

    def load_paths(self, paths) -> int:
        """Stage the alerts of avro files/directories; unreadable files are logged and skipped."""
        return self.alerts.load_paths(paths)

    def load_alerts(self, alerts, visible_at=None) -> int:
        """Stage alert dicts (as fastavro reads them); each becomes visible at visible_at[i] or candidate.jd."""
        return self.alerts.load_alerts(alerts, visible_at)

    @property
    def staged_count(self) -> int:
        """Alerts loaded but not yet visible."""
        return self.alerts.staged_count

    def ingest_due(self) -> int:
        """Ingest the alerts whose time has come on the simulated clock; returns how many were ingested."""
        return self.alerts.ingest_due(self.clock.now_jd())

    def run_query(self, body: dict, user: str | None = None):
        """Execute a /api/queries body for `user` (default: the admin); returns `data` (None: omit it).
        Raises on a bad query. Only the admin may query the users/filters/queries collections."""
        admin = user is None or user == self.admin_username
        return self.alerts.run_query(body, admin=admin)

    def reset_counts(self) -> None:
        with self._count_lock:
            self.request_count = 0
            self.request_counts.clear()

    def _count(self, key: str) -> None:
        with self._count_lock:
            self.request_count += 1
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)
