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

import json
import operator
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping

from bot.redaction import scrub, scrub_text as _scrub_text  # noqa: F401  (journal.scrub stays importable)

SCHEMA_VERSION = 2  # the tables below; older journals are brought here by MIGRATIONS, one numbered step each
MODES = ("dry-run", "live")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id             INTEGER PRIMARY KEY,
    candid         INTEGER NOT NULL,
    model_version  TEXT NOT NULL,
    objectId       TEXT NOT NULL,
    jd             REAL NOT NULL,
    score          REAL,
    status         TEXT NOT NULL,
    magpsf         REAL,
    peakmag_so_far REAL,
    age            REAL,
    drb            REAL,
    extra          TEXT,               -- JSON
    time           TEXT NOT NULL,      -- first recorded
    updated        TEXT,               -- last re-recorded (NULL if never)
    precision      TEXT,               -- which model precision scored it: 'fp32' | 'int8'
    source         TEXT,               -- the alert broker it came from: 'kowalski' | 'boom'
    broker_score   REAL,               -- the broker's own BTSbot score (evidence only)
    broker_model   TEXT,               -- and its model version, where the broker records one
    UNIQUE (candid, model_version)
);
CREATE INDEX IF NOT EXISTS alerts_object ON alerts (objectId, jd);
CREATE INDEX IF NOT EXISTS alerts_jd ON alerts (jd);
CREATE TABLE IF NOT EXISTS decisions (
    id       INTEGER PRIMARY KEY,
    policy   TEXT NOT NULL,
    objectId TEXT NOT NULL,
    candid   INTEGER,
    jd       REAL,
    evidence TEXT,                     -- JSON
    time     TEXT NOT NULL,
    mode     TEXT,                     -- 'dry-run' | 'live': the mode of the run that made it
    UNIQUE (policy, objectId)
);
CREATE INDEX IF NOT EXISTS decisions_object ON decisions (objectId);
CREATE INDEX IF NOT EXISTS decisions_jd ON decisions (jd);
CREATE INDEX IF NOT EXISTS decisions_candid ON decisions (candid);
CREATE TABLE IF NOT EXISTS actions (
    id          INTEGER PRIMARY KEY,
    decision_id INTEGER NOT NULL REFERENCES decisions (id),
    action      TEXT NOT NULL,
    key         TEXT NOT NULL DEFAULT '',   -- '' stands for key=None
    status      TEXT NOT NULL,              -- 'pending' | 'done'
    outcome     TEXT,
    request     TEXT,                       -- JSON, scrubbed
    response    TEXT,                       -- JSON, scrubbed
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    time        TEXT NOT NULL,              -- started (journaled before sending)
    finished    TEXT,
    attempt     TEXT,                       -- JSON: what was being sent, journaled just before sending
    mode        TEXT,                       -- 'dry-run' | 'live': the mode that planned it (NULL: either)
    UNIQUE (decision_id, action, key)
);
CREATE INDEX IF NOT EXISTS actions_status ON actions (status);
CREATE TABLE IF NOT EXISTS state (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""

_ALERT_REQUIRED = ("candid", "objectId", "jd", "model_version", "status")  # and score, which may be None
_ALERT_OPTIONAL = ("magpsf", "peakmag_so_far", "age", "drb")

_UPSERT_ALERT = """
INSERT INTO alerts (candid, model_version, objectId, jd, score, status,
                    magpsf, peakmag_so_far, age, drb, extra, time, precision, source, broker_score, broker_model)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (candid, model_version) DO UPDATE SET
    score = excluded.score,
    precision = excluded.precision,
    status = excluded.status,
    magpsf = coalesce(excluded.magpsf, magpsf),
    peakmag_so_far = coalesce(excluded.peakmag_so_far, peakmag_so_far),
    age = coalesce(excluded.age, age),
    drb = coalesce(excluded.drb, drb),
    extra = coalesce(excluded.extra, extra),
    source = coalesce(excluded.source, source),
    broker_score = coalesce(excluded.broker_score, broker_score),
    broker_model = coalesce(excluded.broker_model, broker_model),
    updated = excluded.time
"""

_ACTION_SELECT = """
SELECT a.id, a.decision_id, a.action, a.key, a.status, a.outcome, a.request, a.response, a.error,
       a.attempts, a.time, a.finished, a.attempt, a.mode, d.policy, d.objectId, d.candid, d.jd
FROM actions a JOIN decisions d ON d.id = a.decision_id
"""

# --- conversions ----------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if callable(getattr(obj, "tolist", None)):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)  # datetimes, paths, ...


def _dumps(obj: Any) -> str | None:
    if obj is None:
        return None
    return json.dumps(obj, default=_json_default, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _int(value: Any, name: str = "candid") -> int:
    """An exact int from an int, a numpy integer or a string of digits; never from a float."""
    if isinstance(value, str):
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer (not {type(value).__name__}: {value!r})") from None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN -> NULL


def _utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the journal ----------------------------------------------------------------------------------


class Journal:
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

    # -- alerts ------------------------------------------------------------------------------------

    def record_alerts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Record alerts handled (upsert on (candid, model_version)); returns how many rows.

        The whole batch is validated first and written in one transaction: a bad row records nothing.
        """
        now = self._now()
        params = []
        for i, r in enumerate(rows):
            try:
                for name in _ALERT_REQUIRED:
                    if r[name] is None:
                        raise ValueError(f"{name} is None")
                params.append((
                    _int(r["candid"]), str(r["model_version"]), str(r["objectId"]), float(r["jd"]),
                    _float(r.get("score")), str(r["status"]),
                    *(_float(r.get(k)) for k in _ALERT_OPTIONAL),
                    _dumps(r.get("extra")), now, r.get("precision"), r.get("source"),
                    _float(r.get("broker_score")), r.get("broker_model"),
                ))
            except KeyError as exc:
                raise KeyError(f"alert row {i} lacks {exc.args[0]!r}") from None
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"alert row {i}: {exc}") from None
        if params:
            with self.transaction():
                self._conn.executemany(_UPSERT_ALERT, params)
        return len(params)

    def known_candids(self, candids: Iterable[Any]) -> set[int]:
        """Which of these candids have been recorded (under any model version)."""
        wanted = list({_int(c) for c in candids})
        found: set[int] = set()
        with self._snapshot():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self._conn.execute(
                    f"SELECT DISTINCT candid FROM alerts WHERE candid IN ({marks})", chunk))
        return found

    def alerts_for_object(self, object_id: str, model_version: str | None = None) -> list[dict]:
        """A source's recorded alerts in jd order (optionally only those of one model version)."""
        sql, params = "SELECT * FROM alerts WHERE objectId = ?", [object_id]
        if model_version is not None:
            sql += " AND model_version = ?"
            params.append(model_version)
        return [self._alert(r) for r in self._read(sql + " ORDER BY jd, candid, model_version", params)]

    @staticmethod
    def _alert(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["extra"] = _loads(d["extra"])
        return d

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

    # -- decisions ---------------------------------------------------------------------------------

    def record_decision(self, policy: str, object_id: str, candid: Any, jd: float | None,
                        evidence: Mapping[str, Any] | None = None, *, mode: str | None = None) -> tuple[int, bool]:
        """Record that `policy` fired for `object_id`; once per (policy, objectId) and mode.

        Returns (decision_id, created); a repeated call returns the existing id with created=False
        and leaves the first decision untouched. A live decision for a source that only a dry-run
        decided takes that decision over (shadow -> live): the row becomes live with the new alert and
        evidence, and the dry-run's actions are kept under keys prefixed "dry-run:" so that the live
        actions are planned afresh.
        """
        mode = mode or self.mode or "live"
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO decisions (policy, objectId, candid, jd, evidence, time, mode) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (policy, objectId) DO NOTHING",
                (policy, object_id, None if candid is None else _int(candid), _float(jd),
                 _dumps(scrub(evidence)), self._now(), mode))
            created = cur.rowcount == 1
            did, old_mode = self._conn.execute("SELECT id, mode FROM decisions WHERE policy = ? AND objectId = ?",
                                               (policy, object_id)).fetchone()
            if not created and mode == "live" and old_mode == "dry-run":
                self._conn.execute("UPDATE decisions SET mode = 'live', candid = ?, jd = ?, evidence = ?, time = ? "
                                   "WHERE id = ?", (None if candid is None else _int(candid), _float(jd),
                                                    _dumps(scrub(evidence)), self._now(), did))
                self._conn.execute("UPDATE actions SET key = 'dry-run:' || key WHERE decision_id = ? AND "
                                   "(mode = 'dry-run' OR mode IS NULL)", (did,))
                created = True
        return did, created

    def decided(self, policy: str, object_id: str, mode: str | None = None) -> bool:
        """Whether `policy` already decided `object_id` for a bot in `mode`: a live bot never counts a
        dry-run decision as done (it acts on the source at its next alert)."""
        d = self.get_decision(policy, object_id)
        if d is None:
            return False
        return not ((mode or self.mode) == "live" and d.get("mode") == "dry-run")

    def finished_actions(self, action: str, outcome: str, mode: str, since: datetime, until: datetime) -> list[dict]:
        """The `action` rows of `mode` that finished with `outcome` in [since, until) (their `finished` time)."""
        iso = [t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z") for t in (since, until)]
        rows = self._read(_ACTION_SELECT + " WHERE a.action = ? AND a.outcome = ? AND a.mode = ? AND a.finished >= ? "
                          "AND a.finished < ? ORDER BY a.finished", (action, outcome, mode, *iso))
        return [self._action(r) for r in rows]

    def decided_any(self, object_id: str) -> bool:
        """Whether any policy ever decided `object_id`."""
        return bool(self._read("SELECT 1 FROM decisions WHERE objectId = ? LIMIT 1", (object_id,)))

    def mode_summary(self) -> dict:
        """Decisions and actions per mode, for the start banner: {"decisions": {mode: n}, "actions": {mode: n},
        "dry_run_only_sources": n} (sources decided only by dry-run, which a live bot acts on at their next alert)."""
        with self._snapshot():
            dec = dict(self._conn.execute("SELECT coalesce(mode, 'unknown'), count(*) FROM decisions GROUP BY 1"))
            act = dict(self._conn.execute("SELECT coalesce(mode, 'unknown'), count(*) FROM actions GROUP BY 1"))
            only = self._conn.execute("SELECT count(DISTINCT objectId) FROM decisions WHERE mode = 'dry-run'").fetchone()[0]
        return {"decisions": dec, "actions": act, "dry_run_only_sources": only}

    def get_decision(self, policy: str, object_id: str) -> dict | None:
        rows = self._read("SELECT * FROM decisions WHERE policy = ? AND objectId = ?", (policy, object_id))
        return self._decision(rows[0]) if rows else None

    def get_decision_by_id(self, decision_id: int) -> dict | None:
        rows = self._read("SELECT * FROM decisions WHERE id = ?", (decision_id,))
        return self._decision(rows[0]) if rows else None

    @staticmethod
    def _decision(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["evidence"] = _loads(d["evidence"])
        return d

    # -- actions -----------------------------------------------------------------------------------

    def start_action(self, decision_id: int, action: str, request: Mapping[str, Any] | None,
                     key: str | None = None, *, mode: str | None = None) -> int:
        """Journal an action as "pending" BEFORE sending it; returns its id.

        Idempotent on (decision_id, action, key), key=None included: if that action exists, its
        id is returned and nothing changes (a finished action stays finished).
        """
        k = "" if key is None else str(key)
        with self.transaction():
            self._conn.execute(
                "INSERT INTO actions (decision_id, action, key, status, request, time, mode) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (decision_id, action, key) DO NOTHING",
                (decision_id, action, k, _dumps(scrub(request)), self._now(), mode or self.mode or "live"))
            return self._conn.execute(
                "SELECT id FROM actions WHERE decision_id = ? AND action = ? AND key = ?",
                (decision_id, action, k)).fetchone()[0]

    def finish_action(self, action_id: int, outcome: str, response: Mapping[str, Any] | None = None,
                      error: str | None = None) -> None:
        """Record an action's outcome AFTER it was sent (or skipped, or failed)."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET status = 'done', outcome = ?, response = ?, error = ?, finished = ? "
                "WHERE id = ?",
                (outcome, _dumps(scrub(response)), None if error is None else _scrub_text(str(error)),
                 self._now(), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no action {action_id}")

    def note_attempt(self, action_id: int, error: str) -> None:
        """An attempt that failed transiently: the action stays pending (resumed later), attempts + 1."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET attempts = attempts + 1, error = ? WHERE id = ? AND status = 'pending'",
                (_scrub_text(str(error)), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no pending action {action_id}")

    def mark_sending(self, action_id: int, attempt: Mapping[str, Any]) -> None:
        """Journal what is about to be sent, just BEFORE sending it (`attempt`, with the time): after a
        crash between the send and `finish_action`, the next run finds the mark and knows it may have
        gone out (a webhook cannot be read back; a follow-up request can be recognised in the listing)."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET attempt = ? WHERE id = ? AND status = 'pending'",
                (_dumps(scrub({**attempt, "at": self._now()})), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no pending action {action_id}")

    def clear_sending(self, action_id: int) -> None:
        """The attempt marked by `mark_sending` certainly did not go out (refused before delivery)."""
        with self.transaction():
            self._conn.execute("UPDATE actions SET attempt = NULL WHERE id = ?", (action_id,))

    def unfinished_actions(self, mode: str | None = None) -> list[dict]:
        """Actions journaled as pending but never finished (in flight when the bot stopped), of `mode`
        (default: the journal's mode; a live bot never runs what a dry-run planned; None: all)."""
        mode = mode or self.mode
        if mode is None:
            rows = self._read(_ACTION_SELECT + " WHERE a.status = 'pending' ORDER BY a.id")
        else:
            rows = self._read(_ACTION_SELECT + " WHERE a.status = 'pending' AND (a.mode = ? OR a.mode IS NULL) "
                              "ORDER BY a.id", (mode,))
        return [self._action(r) for r in rows]

    def action(self, action_id: int) -> dict | None:
        rows = self._read(_ACTION_SELECT + " WHERE a.id = ?", (action_id,))
        return self._action(rows[0]) if rows else None

    def actions_for_object(self, object_id: str, action: str, *, pending: bool = False) -> list[dict]:
        """The actions of kind `action` of every decision about `object_id` (only the pending ones if asked)."""
        where = " WHERE a.action = ? AND d.objectId = ?" + (" AND a.status = 'pending'" if pending else "")
        return [self._action(r) for r in self._read(_ACTION_SELECT + where + " ORDER BY a.id", (action, object_id))]

    def actions_for(self, decision_id: int) -> list[dict]:
        return [self._action(r) for r in self._read(_ACTION_SELECT + " WHERE a.decision_id = ? ORDER BY a.id",
                                                    (decision_id,))]

    @staticmethod
    def _action(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["key"] = d["key"] or None
        d["request"], d["response"] = _loads(d["request"]), _loads(d["response"])
        d["attempt"] = _loads(d.get("attempt"))
        return d

    # -- reading back ------------------------------------------------------------------------------

    _KINDS = ("alerts", "decisions", "actions")

    def history(self, object_id: str | None = None, since_jd: float | None = None,
                until_jd: float | None = None, kind: str = "all", limit: int | None = None) -> list[dict]:
        """Journal entries ordered by time (when written), for `btsbot journal`.

        Filters: object_id; since_jd <= jd < until_jd (an action's jd is its decision's);
        kind "all", "alerts", "decisions" or "actions". limit keeps the most recent `limit` entries
        (still returned oldest first). Every row has the same keys (None where not relevant).
        """
        if kind != "all" and kind not in self._KINDS:
            raise ValueError(f"kind must be 'all', 'alerts', 'decisions' or 'actions', not {kind!r}")
        kinds = self._KINDS if kind == "all" else (kind,)
        entries: list[dict] = []
        with self._snapshot():
            for k in kinds:
                alias = {"alerts": "", "decisions": "", "actions": "d."}[k]
                where, params = [], []
                if object_id is not None:
                    where.append(f"{alias}objectId = ?")
                    params.append(object_id)
                if since_jd is not None:
                    where.append(f"{alias}jd >= ?")
                    params.append(since_jd)
                if until_jd is not None:
                    where.append(f"{alias}jd < ?")
                    params.append(until_jd)
                base = {"alerts": "SELECT * FROM alerts", "decisions": "SELECT * FROM decisions",
                        "actions": _ACTION_SELECT}[k]
                sql = base + (" WHERE " + " AND ".join(where) if where else "")
                if limit is not None:  # alerts and decisions are written in id order (no index on time)
                    order = "a.time DESC, a.id DESC" if k == "actions" else "id DESC"
                    sql += f" ORDER BY {order} LIMIT {max(int(limit), 0)}"
                entries.extend(self._entry(k, r) for r in self._conn.execute(sql, params))
        rank = {k[:-1]: i for i, k in enumerate(self._KINDS)}
        entries.sort(key=lambda e: (e["time"], rank[e["kind"]], e["id"]))
        if limit is not None:
            entries = entries[-int(limit):] if int(limit) > 0 else []
        return entries

    def _entry(self, kind: str, row: sqlite3.Row) -> dict:
        e = dict.fromkeys(("kind", "id", "time", "objectId", "candid", "jd", "policy", "action", "key",
                           "outcome", "score", "model_version", "status", "request", "response",
                           "error", "evidence", "decision_id", "finished", "extra", "mode"))
        if kind == "alerts":
            e.update(self._alert(row))
        elif kind == "decisions":
            e.update(self._decision(row))
        else:
            e.update(self._action(row))
        e["kind"] = kind[:-1]  # "alert", "decision", "action"
        return e


# --- migrations: one numbered step from the version before it ---------------------------------------

def _to_2(j: Journal) -> None:
    """1 -> 2: the columns version-1 journals gained on open (actions.attempt, the modes, alerts.precision)
    and those of the alert source and the broker's own score. Idempotent: a version-1 journal may hold
    some of them already."""
    c = j._conn
    j._ensure_column("actions", "attempt", "TEXT")
    for column, decl in (("precision", "TEXT"), ("source", "TEXT"), ("broker_score", "REAL"), ("broker_model", "TEXT")):
        j._ensure_column("alerts", column, decl)
    if j._ensure_column("actions", "mode", "TEXT"):  # a finished action's mode from its outcome
        c.execute("UPDATE actions SET mode = CASE WHEN outcome = 'dry-run' THEN 'dry-run' ELSE 'live' END "
                  "WHERE status = 'done'")  # an old pending action: NULL, taken by whichever mode runs
    if j._ensure_column("decisions", "mode", "TEXT"):  # the mode of its actions
        c.execute("UPDATE decisions SET mode = CASE WHEN EXISTS (SELECT 1 FROM actions a WHERE "
                  "a.decision_id = decisions.id AND a.mode = 'live') THEN 'live' WHEN EXISTS (SELECT 1 "
                  "FROM actions a WHERE a.decision_id = decisions.id AND a.mode = 'dry-run') THEN "
                  "'dry-run' END")


MIGRATIONS: dict[int, Callable[[Journal], None]] = {2: _to_2}
