"""The journal's tables as they are now (SCHEMA_VERSION), and the numbered steps that bring an older
journal there (MIGRATIONS: version N-1 -> N, each once; `Journal._migrate` runs them)."""

from __future__ import annotations

from typing import Callable

SCHEMA_VERSION = 4  # the tables below; older journals are brought here by MIGRATIONS, one numbered step each
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
CREATE TABLE IF NOT EXISTS evidence (
    candid     INTEGER PRIMARY KEY,     -- the alert at which a policy fired
    objectId   TEXT NOT NULL,
    science    BLOB,                    -- zscaled 8-bit cutouts (numpy .npy bytes), NULL if unreadable
    template   BLOB,
    difference BLOB,
    lightcurve TEXT,                    -- JSON: the detections and upper limits the bot had at that alert
    time       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_object ON evidence (objectId);
CREATE TABLE IF NOT EXISTS annotations_owed (
    objectId TEXT PRIMARY KEY,          -- a source a committed chunk touched, its annotation not planned yet
    time     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""


# --- migrations: one numbered step from the version before it ---------------------------------------

def _to_2(j) -> None:
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


def _to_3(j) -> None:
    """2 -> 3: the `evidence` table (cutouts and light curve kept at decision time for the night report);
    created by the table definitions themselves, so there is nothing to convert."""


OLD_ANNOTATIONS_OWED = "cycle.annotations_owed"  # where versions <= 3 kept them: a JSON list in `state`


def _to_4(j) -> None:
    """3 -> 4: the sources owed an annotation become rows of `annotations_owed` (the table definitions
    create it) instead of a JSON list in the key/value `state`; the list, if any, is moved."""
    import json

    row = j._conn.execute("SELECT value FROM state WHERE key = ?", (OLD_ANNOTATIONS_OWED,)).fetchone()
    if row is not None:
        owed = json.loads(row[0]) if row[0] else []
        j._conn.executemany("INSERT OR IGNORE INTO annotations_owed VALUES (?, ?)",
                            [(str(oid), j._now()) for oid in owed])
        j._conn.execute("DELETE FROM state WHERE key = ?", (OLD_ANNOTATIONS_OWED,))


MIGRATIONS: dict[int, Callable[[object], None]] = {2: _to_2, 3: _to_3, 4: _to_4}
