"""The SQLite schema of the SkyPortal stand-in, and how values are stored in its columns.

Timestamps are naive UTC ISO strings, as SkyPortal's JSON encoder writes them (no offset, microseconds
omitted when 0); lists and dicts are stored as JSON text.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

# Obj columns SkyPortal serialises (SP models/obj.py:186-292) plus internal_key.
OBJ_COLUMNS = (
    "id", "ra", "dec", "ra_dis", "dec_dis", "ra_err", "dec_err", "offset", "t0", "redshift",
    "redshift_error", "redshift_origin", "redshift_history", "host_id", "summary", "summary_history",
    "altdata", "dist_nearest_source", "mag_nearest_source", "e_mag_nearest_source", "transient",
    "varstar", "is_roid", "mpc_name", "tns_name", "tns_info", "score", "origin", "alias",
    "detect_photometry_count", "created_at", "modified", "internal_key",
)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, first_name TEXT,
  last_name TEXT, contact_email TEXT, is_admin INTEGER NOT NULL DEFAULT 0, is_bot INTEGER NOT NULL DEFAULT 0,
  expired INTEGER NOT NULL DEFAULT 0, roles TEXT NOT NULL DEFAULT '[]', permissions TEXT NOT NULL DEFAULT '[]',
  acls TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL);
CREATE TABLE tokens (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), name TEXT,
  acls TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE groups_ (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, nickname TEXT, description TEXT,
  private INTEGER NOT NULL DEFAULT 0, single_user_group INTEGER NOT NULL DEFAULT 0,
  auto_accept_requests INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, modified TEXT NOT NULL);
CREATE TABLE group_users (group_id INTEGER NOT NULL REFERENCES groups_(id), user_id INTEGER NOT NULL
  REFERENCES users(id), can_save INTEGER NOT NULL DEFAULT 1, admin INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (group_id, user_id));
CREATE TABLE telescopes (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE instruments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, telescope_id INTEGER, data TEXT NOT NULL);
CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE allocations (id INTEGER PRIMARY KEY, group_id INTEGER NOT NULL REFERENCES groups_(id),
  instrument_id INTEGER NOT NULL REFERENCES instruments(id), facility TEXT NOT NULL DEFAULT 'ok',
  data TEXT NOT NULL, created_at TEXT NOT NULL, modified TEXT NOT NULL);
CREATE TABLE facility_rules (allocation_id INTEGER NOT NULL, obj_id TEXT NOT NULL, mode TEXT NOT NULL,
  PRIMARY KEY (allocation_id, obj_id));
CREATE TABLE default_followups (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE objs (id TEXT PRIMARY KEY, ra REAL, dec REAL, tns_name TEXT, data TEXT NOT NULL,
  created_at TEXT NOT NULL, modified TEXT NOT NULL);
CREATE TABLE obj_flags (obj_id TEXT PRIMARY KEY, classified INTEGER NOT NULL DEFAULT 0,
  spectra INTEGER NOT NULL DEFAULT 0, tns_classified INTEGER);
CREATE TABLE sources (id INTEGER PRIMARY KEY AUTOINCREMENT, obj_id TEXT NOT NULL REFERENCES objs(id),
  group_id INTEGER NOT NULL REFERENCES groups_(id), saved_by_id INTEGER, saved_at TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1, requested INTEGER NOT NULL DEFAULT 0, unsaved_by_id INTEGER,
  unsaved_at TEXT, created_at TEXT NOT NULL, modified TEXT NOT NULL, UNIQUE (obj_id, group_id));
CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT, obj_id TEXT NOT NULL REFERENCES objs(id),
  text TEXT NOT NULL, author_id INTEGER NOT NULL, bot INTEGER NOT NULL DEFAULT 0, origin TEXT, channel TEXT,
  attachment_name TEXT, attachment_bytes TEXT, group_ids TEXT NOT NULL, created_at TEXT NOT NULL,
  modified TEXT NOT NULL);
CREATE TABLE annotations (id INTEGER PRIMARY KEY AUTOINCREMENT, obj_id TEXT NOT NULL REFERENCES objs(id),
  origin TEXT NOT NULL, data TEXT NOT NULL, author_id INTEGER NOT NULL, group_ids TEXT NOT NULL,
  created_at TEXT NOT NULL, modified TEXT NOT NULL, UNIQUE (obj_id, origin));
CREATE TABLE followup_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, obj_id TEXT NOT NULL REFERENCES objs(id),
  allocation_id INTEGER NOT NULL REFERENCES allocations(id), requester_id INTEGER,
  last_modified_by_id INTEGER, payload TEXT NOT NULL, status TEXT NOT NULL, comment TEXT,
  target_group_ids TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, modified TEXT NOT NULL);
"""

# Classification rows (SP models/classification.py:16-90: classification, origin, taxonomy_id, probability, ml,
# author_id, author_name, obj_id; read by members of its groups, :21). Created IF NOT EXISTS at every start, so a
# database written before the table existed gains it.
CLASSIFICATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS classifications (id INTEGER PRIMARY KEY AUTOINCREMENT,
  obj_id TEXT NOT NULL REFERENCES objs(id), classification TEXT NOT NULL, taxonomy_id INTEGER NOT NULL DEFAULT 1,
  probability REAL, ml INTEGER NOT NULL DEFAULT 0, author_id INTEGER NOT NULL REFERENCES users(id),
  author_name TEXT NOT NULL, origin TEXT, group_ids TEXT NOT NULL, created_at TEXT NOT NULL, modified TEXT NOT NULL);
"""


def utcnow() -> str:
    """Naive UTC ISO timestamp, as SkyPortal serialises datetimes."""
    return datetime.utcnow().isoformat()


def dumps(v: Any) -> str:
    return json.dumps(v)


def loads(s: str | None) -> Any:
    return None if s is None else json.loads(s)
