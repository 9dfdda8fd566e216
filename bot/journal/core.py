"""The journal: a SQLite record of every alert handled, every policy decision and every action.

It is what makes the bot idempotent across restarts:

* ``alerts``    one row per (candid, model_version); the poller asks `known_candids` which candids
                it already handled, and policies read a source's history with `alerts_for_object`.
* ``decisions`` one row per (policy, objectId): a policy fires once per source.
* ``actions``   one row per (decision, action, key), written *before* the request is sent (status
                "pending") and completed *after* with its outcome; `unfinished_actions` lists what
                was in flight when the bot stopped.
* ``state``     a small key/value store (poll cursors).

Requests, responses and evidence are stored as JSON text with secrets scrubbed (`scrub`).
Timestamps are UTC ISO-8601 strings (``2024-11-25T16:01:02.123456Z``); candids are stored as
INTEGER (they exceed 2**53, so they must never pass through a float).

One connection is shared by all threads (``check_same_thread=False``) behind a re-entrant lock;
`transaction` holds that lock for its whole block, so another thread never sees half of it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from bot.journal.actions import ActionsMixin
from bot.journal.alerts import AlertsMixin
from bot.journal.codec import _utcnow
from bot.journal.decisions import DecisionsMixin
from bot.journal.history import HistoryMixin
from bot.journal.schema import _SCHEMA, MIGRATIONS, MODES, SCHEMA_VERSION


class Journal(AlertsMixin, DecisionsMixin, ActionsMixin, HistoryMixin):
    """The bot's SQLite journal. ``Journal(path)`` with a file path or ":memory:"."""

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "FULL", timeout: float = 30.0,
                 clock: Callable[[], str] | None = None, mode: str | None = None):
        if mode not in (None, *MODES):
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.path = str(path)
        self.mode = mode  # the bot's mode: what it records, and whose unfinished actions it lists (None: all)
        self._now = clock or _utcnow
        self._lock = threading.RLock()
        self._depth = 0  # transaction nesting depth (guarded by _lock)
        if self.path != ":memory:" and not self.path.startswith("file:"):
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                     check_same_thread=False, uri=self.path.startswith("file:"))
        self._conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        """Create the tables of a new journal at SCHEMA_VERSION, or bring an older one there step by step
        (`MIGRATIONS`), recording the version reached; a newer journal is refused."""
        with self.transaction():
            c = self._conn
            has = c.execute("SELECT 1 FROM sqlite_master WHERE name='schema_version'").fetchone()
            version = c.execute("SELECT max(version) FROM schema_version").fetchone()[0] if has else None
            if version is not None and version > SCHEMA_VERSION:
                raise RuntimeError(f"journal {self.path} has schema version {version}; this btsbot "
                                   f"knows up to {SCHEMA_VERSION}: upgrade btsbot")
            existing = c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alerts'").fetchone()
            start = version if version is not None else (1 if existing else SCHEMA_VERSION)
            for stmt in _SCHEMA.split(";"):  # a table an older journal lacks is created as it is now
                if stmt.strip():
                    c.execute(stmt)
            for step in range(start + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](self)
            if version is None or version < SCHEMA_VERSION:
                c.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION, self._now()))

    def _ensure_column(self, table: str, column: str, decl: str) -> bool:
        """Add `column` to `table` unless it is there (old journals gain it, new ones get it once);
        True when it was added (the caller may then fill it for the existing rows)."""
        have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            return True
        return False

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator["Journal"]:
        """Group several calls atomically: all of them are committed, or none if the block raises.

        Nested blocks (and the methods called inside) join the outer transaction through a
        savepoint, so an exception caught inside the outer block undoes only the inner part.
        The lock is held for the whole block: other threads wait, and never see half of it.
        """
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("journal is closed")
            outer = self._depth == 0
            name = f"sp{self._depth}"
            self._conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            try:
                self._conn.execute("COMMIT" if outer else f"RELEASE {name}")
            except BaseException:
                if outer and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Several reads under one (deferred, read-only) transaction, unless already in one."""
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("journal is closed")
            if self._depth:
                yield
                return
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("journal is closed")
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- state -------------------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_state(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"state values are str, not {type(value).__name__}")
        with self.transaction():
            self._conn.execute("INSERT INTO state VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                               "value = excluded.value, updated = excluded.updated",
                               (key, value, self._now()))
