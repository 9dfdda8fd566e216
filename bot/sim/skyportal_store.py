"""SQLite state of the local SkyPortal stand-in: schema, seed loading, row access and serialisation.

Everything here runs under `Store.lock` (the HTTP handlers take it for a whole request), so one
connection is shared by all server threads. Timestamps are naive UTC ISO strings, as SkyPortal's JSON
encoder writes them (no offset, microseconds omitted when 0).
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
import threading
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SEED = "skyportal_seed.yaml"

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


def utcnow() -> str:
    """Naive UTC ISO timestamp, as SkyPortal serialises datetimes."""
    return datetime.utcnow().isoformat()


def dumps(v: Any) -> str:
    return json.dumps(v)


def loads(s: str | None) -> Any:
    return None if s is None else json.loads(s)


def angular_sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def galactic(ra: float, dec: float) -> tuple[float, float]:
    """ICRS (J2000) -> galactic (l, b) in degrees."""
    ra_gp, dec_gp, l_ncp = math.radians(192.85948), math.radians(27.12825), math.radians(122.93192)
    r, d = math.radians(ra), math.radians(dec)
    sin_b = math.sin(d) * math.sin(dec_gp) + math.cos(d) * math.cos(dec_gp) * math.cos(r - ra_gp)
    b = math.asin(max(-1.0, min(1.0, sin_b)))
    y = math.cos(d) * math.sin(r - ra_gp)
    x = math.sin(d) * math.cos(dec_gp) - math.cos(d) * math.sin(dec_gp) * math.cos(r - ra_gp)
    gl = (l_ncp - math.atan2(y, x)) % (2 * math.pi)
    return math.degrees(gl), math.degrees(b)


def load_seed(seed: None | str | Path | dict) -> dict:
    """The seed as a dict: None -> the packaged default, a path -> that YAML file, a dict -> a copy."""
    if seed is None:
        text = resources.files("bot.sim").joinpath(DEFAULT_SEED).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    elif isinstance(seed, dict):
        data = copy.deepcopy(seed)
    else:
        data = yaml.safe_load(Path(seed).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("SkyPortal sim seed must be a mapping")
    for user in data.get("users", []):
        for tok in user.get("tokens", []):
            if "token" in str(tok["id"]):
                raise ValueError(
                    f"seed token {tok['id']!r} contains the word 'token': SkyPortal strips every "
                    "occurrence of 'token' from the Authorization header, so it could never authenticate"
                )
    return data


class Store:
    """The simulator's database. Call methods with `lock` held (the server does)."""

    def __init__(self, seed: None | str | Path | dict = None, db_path: str | None = None):
        self.seed = load_seed(seed)
        self.lock = threading.RLock()
        self.version = str(self.seed.get("version", "1.4.0+sim"))
        self.public_group_name = self.seed.get("public_group_name", "Sitewide Group")
        self.db = sqlite3.connect(db_path or ":memory:", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys = ON")
        with self.lock:
            has_schema = self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            if not has_schema:
                self.db.executescript(SCHEMA)
                self._apply_seed(self.seed)
        tok = self.seed.get("bot_token")
        if tok is None:
            first = self.q1("SELECT id FROM tokens ORDER BY created_at, rowid LIMIT 1")
            tok = first["id"] if first else None
        self.bot_token = tok

    # ---- low-level helpers ------------------------------------------------------------------------
    def q(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def q1(self, sql: str, params: tuple | list = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def x(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, params)

    def begin(self) -> None:
        self.db.execute("BEGIN")

    def commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # ---- seed -------------------------------------------------------------------------------------
    def _apply_seed(self, s: dict) -> None:
        now = utcnow()
        self.begin()
        for g in s.get("groups", []):
            self.x(
                "INSERT INTO groups_ (id, name, nickname, description, private, single_user_group,"
                " auto_accept_requests, created_at, modified) VALUES (?,?,?,?,?,?,?,?,?)",
                (g["id"], g["name"], g.get("nickname"), g.get("description"), int(bool(g.get("private"))),
                 int(bool(g.get("single_user_group"))), int(bool(g.get("auto_accept_requests"))), now, now),
            )
        for u in s.get("users", []):
            perms = list(u.get("permissions", []))
            if u.get("is_admin") and "System admin" not in perms:
                perms.append("System admin")
            self.x(
                "INSERT INTO users (id, username, first_name, last_name, contact_email, is_admin, is_bot,"
                " expired, roles, permissions, acls, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (u["id"], u["username"], u.get("first_name"), u.get("last_name"), u.get("contact_email"),
                 int(bool(u.get("is_admin"))), int(bool(u.get("is_bot"))), int(bool(u.get("expired"))),
                 dumps(u.get("roles", [])), dumps(perms), dumps(u.get("acls", [])), now),
            )
            for m in u.get("groups", []):
                m = {"id": m} if isinstance(m, int) else m
                self.x("INSERT INTO group_users (group_id, user_id, can_save, admin) VALUES (?,?,?,?)",
                       (m["id"], u["id"], int(m.get("can_save", True)), int(bool(m.get("admin")))))
            for t in u.get("tokens", []):
                self.x("INSERT INTO tokens (id, user_id, name, acls, created_at) VALUES (?,?,?,?,?)",
                       (str(t["id"]), u["id"], t.get("name"), dumps(t.get("acls", [])), now))
        for t in s.get("telescopes", []):
            d = {"id": t["id"], "name": t["name"], "nickname": t.get("nickname"), "lat": t.get("lat"),
                 "lon": t.get("lon"), "elevation": t.get("elevation"), "diameter": t.get("diameter"),
                 "skycam_link": None, "weather_link": None, "robotic": bool(t.get("robotic", False)),
                 "fixed_location": bool(t.get("fixed_location", True)), "created_at": now, "modified": now}
            self.x("INSERT INTO telescopes (id, data) VALUES (?,?)", (t["id"], dumps(d)))
        for i in s.get("instruments", []):
            d = {"id": i["id"], "name": i["name"], "type": i.get("type"), "band": i.get("band"),
                 "telescope_id": i.get("telescope_id"), "filters": i.get("filters", []),
                 "api_classname": i.get("api_classname"), "api_classname_obsplan": i.get("api_classname_obsplan"),
                 "listener_classname": "SEDMListener" if i.get("api_classname") == "SEDMAPI" else None,
                 "sensitivity_data": None, "configuration_data": None, "treasuremap_id": None,
                 "tns_id": None, "region": None, "has_fields": False, "has_region": False,
                 "created_at": now, "modified": now}
            self.x("INSERT INTO instruments (id, name, telescope_id, data) VALUES (?,?,?,?)",
                   (i["id"], i["name"], i.get("telescope_id"), dumps(d)))
        for st in s.get("streams", []):
            self.x("INSERT INTO streams (id, name, created_at) VALUES (?,?,?)", (st["id"], st["name"], now))
        for a in s.get("allocations", []):
            d = {"id": a["id"], "pi": a.get("pi"), "proposal_id": a.get("proposal_id"),
                 "validity_ranges": a.get("validity_ranges"), "hours_allocated": a.get("hours_allocated", 0.0),
                 "default_share_group_ids": a.get("default_share_group_ids"), "types": a.get("types", ["triggered"]),
                 "group_id": a["group_id"], "instrument_id": a["instrument_id"]}
            self.x("INSERT INTO allocations (id, group_id, instrument_id, facility, data, created_at, modified)"
                   " VALUES (?,?,?,?,?,?,?)",
                   (a["id"], a["group_id"], a["instrument_id"], a.get("facility", "ok"), dumps(d), now, now))
        for o in s.get("objs", []):
            extra = {k: v for k, v in o.items() if k in OBJ_COLUMNS and k not in ("id", "ra", "dec")}
            self.insert_obj(o["id"], o["ra"], o["dec"], extra)
            if o.get("classified") or o.get("spectra"):
                self.set_flags(o["id"], classified=o.get("classified"), spectra=o.get("spectra"))
            for sv in o.get("saves", []):
                self.x("INSERT INTO sources (obj_id, group_id, saved_by_id, saved_at, active, requested,"
                       " created_at, modified) VALUES (?,?,?,?,1,0,?,?)",
                       (o["id"], sv["group_id"], sv.get("saved_by"), now, now, now))
        for r in s.get("followup_requests", []):
            self.x("INSERT INTO followup_requests (obj_id, allocation_id, requester_id, last_modified_by_id,"
                   " payload, status, comment, target_group_ids, created_at, modified)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (r["obj_id"], r["allocation_id"], r.get("requester_id"), r.get("requester_id"),
                    dumps(r.get("payload", {})), r.get("status", "submitted"), r.get("comment"),
                    dumps(r.get("target_group_ids", [])), now, now))
        for d in s.get("default_followup_requests", []):
            self.x("INSERT INTO default_followups (data) VALUES (?)", (dumps(d),))
        self.x("INSERT INTO meta (key, value) VALUES ('seeded_at', ?)", (now,))
        self.commit()

    # ---- users, tokens, groups --------------------------------------------------------------------
    def token(self, token_id: str) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM tokens WHERE id = ?", (token_id,))

    def user(self, user_id: int | None) -> sqlite3.Row | None:
        if user_id is None:
            return None
        return self.q1("SELECT * FROM users WHERE id = ?", (user_id,))

    def is_admin(self, user: sqlite3.Row) -> bool:
        return bool(user["is_admin"]) or "System admin" in loads(user["permissions"])

    def member_group_ids(self, user_id: int) -> list[int]:
        return [r["group_id"] for r in self.q(
            "SELECT group_id FROM group_users WHERE user_id = ? ORDER BY group_id", (user_id,))]

    def accessible_group_ids(self, user: sqlite3.Row) -> list[int]:
        """SkyPortal's User.accessible_groups: every group for a System admin, else the memberships."""
        if self.is_admin(user):
            return [r["id"] for r in self.q("SELECT id FROM groups_ ORDER BY id")]
        return self.member_group_ids(user["id"])

    def group_user(self, group_id: int, user_id: int) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM group_users WHERE group_id = ? AND user_id = ?", (group_id, user_id))

    def group(self, group_id: int) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM groups_ WHERE id = ?", (group_id,))

    def public_group_id(self) -> int | None:
        row = self.q1("SELECT id FROM groups_ WHERE name = ?", (self.public_group_name,))
        return row["id"] if row else None

    def existing_group_ids(self, ids: list[int]) -> list[int]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [r["id"] for r in self.q(f"SELECT id FROM groups_ WHERE id IN ({marks})", list(ids))]

    # ---- objs and flags ---------------------------------------------------------------------------
    def obj(self, obj_id: str, case_insensitive: bool = False) -> sqlite3.Row | None:
        if case_insensitive:
            return self.q1("SELECT * FROM objs WHERE lower(id) = lower(?)", (obj_id,))
        return self.q1("SELECT * FROM objs WHERE id = ?", (obj_id,))

    def insert_obj(self, obj_id: str, ra: float, dec: float, extra: dict) -> None:
        now = utcnow()
        row = self.q1("SELECT COALESCE(MAX(rowid), 0) + 1 AS k FROM objs")
        data = {k: None for k in OBJ_COLUMNS if k not in ("id", "ra", "dec", "created_at", "modified")}
        data.update({k: v for k, v in extra.items() if k in OBJ_COLUMNS})
        data["internal_key"] = f"sim-{row['k']:08d}"
        self.x("INSERT INTO objs (id, ra, dec, tns_name, data, created_at, modified) VALUES (?,?,?,?,?,?,?)",
               (obj_id, ra, dec, data.get("tns_name"), dumps(data), now, now))
        self._apply_tns_flag(obj_id)

    def flags(self, obj_id: str) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM obj_flags WHERE obj_id = ?", (obj_id,))

    def set_flags(self, obj_id: str, classified=None, spectra=None, tns_classified=None) -> None:
        self.x("INSERT OR IGNORE INTO obj_flags (obj_id) VALUES (?)", (obj_id,))
        if classified is not None:
            self.x("UPDATE obj_flags SET classified = ? WHERE obj_id = ?", (int(bool(classified)), obj_id))
        if spectra is not None:
            self.x("UPDATE obj_flags SET spectra = ? WHERE obj_id = ?", (int(bool(spectra)), obj_id))
        if tns_classified is not None:
            self.x("UPDATE obj_flags SET tns_classified = ? WHERE obj_id = ?", (int(bool(tns_classified)), obj_id))
            self._apply_tns_flag(obj_id)

    def set_tns_info(self, obj_id: str, tns_name: str | None, tns_info: dict | None) -> None:
        o = self.obj(obj_id)
        if o is None:
            raise KeyError(f"no Obj {obj_id}")
        data = loads(o["data"])
        if tns_name is not None:
            data["tns_name"] = tns_name
        if tns_info is not None:
            data["tns_info"] = tns_info
        self.x("UPDATE objs SET tns_name = ?, data = ?, modified = ? WHERE id = ?",
               (data.get("tns_name"), dumps(data), utcnow(), obj_id))

    def _apply_tns_flag(self, obj_id: str) -> None:
        """tns_classified=True makes the TNS name start with 'SN' (what not_if_tns_classified tests)."""
        f, o = self.flags(obj_id), self.obj(obj_id)
        if f is None or o is None or f["tns_classified"] is None:
            return
        name = o["tns_name"]
        if f["tns_classified"]:
            if not (name or "").startswith("SN"):
                base = name[2:].strip() if name and name[:2] in ("AT", "at") else (name or f"sim-{obj_id}")
                name = f"SN {base}"
        elif name and name.startswith("SN"):
            name = "AT " + name[2:].strip()
        data = loads(o["data"])
        data["tns_name"] = name
        self.x("UPDATE objs SET tns_name = ?, data = ? WHERE id = ?", (name, dumps(data), obj_id))

    def objs_within(self, ra: float, dec: float, radius_deg: float) -> list[sqlite3.Row]:
        """Objs within radius_deg of (ra, dec) (a coarse dec prefilter, then the exact distance)."""
        rows = self.q("SELECT * FROM objs WHERE dec BETWEEN ? AND ?", (dec - radius_deg - 1e-9, dec + radius_deg + 1e-9))
        return [r for r in rows if r["ra"] is not None
                and angular_sep_deg(ra, dec, r["ra"], r["dec"]) <= radius_deg]

    # ---- serialisation ----------------------------------------------------------------------------
    def user_dict(self, u: sqlite3.Row | None) -> dict | None:
        if u is None:
            return None
        return {"id": u["id"], "created_at": u["created_at"], "modified": u["created_at"],
                "username": u["username"], "first_name": u["first_name"], "last_name": u["last_name"],
                "contact_email": u["contact_email"], "contact_phone": None, "oauth_uid": None,
                "expiration_date": None, "is_bot": bool(u["is_bot"]), "timezone": None, "affiliations": [],
                "gravatar_url": f"https://secure.gravatar.com/avatar/sim{u['id']}?d=blank"}

    def group_dict(self, g: sqlite3.Row) -> dict:
        return {"id": g["id"], "name": g["name"], "nickname": g["nickname"], "description": g["description"],
                "private": bool(g["private"]), "auto_accept_requests": bool(g["auto_accept_requests"]),
                "single_user_group": bool(g["single_user_group"]), "created_at": g["created_at"],
                "modified": g["modified"]}

    def groups_dicts(self, ids: list[int]) -> list[dict]:
        out = []
        for gid in ids:
            g = self.group(gid)
            if g is not None:
                out.append(self.group_dict(g))
        return out

    def telescope_dict(self, tel_id: int | None) -> dict | None:
        row = self.q1("SELECT data FROM telescopes WHERE id = ?", (tel_id,)) if tel_id is not None else None
        return loads(row["data"]) if row else None

    def instrument_dict(self, inst_id: int, with_telescope: bool = True) -> dict | None:
        row = self.q1("SELECT data FROM instruments WHERE id = ?", (inst_id,))
        if row is None:
            return None
        d = loads(row["data"])
        if with_telescope:
            d["telescope"] = self.telescope_dict(d.get("telescope_id"))
        return d

    def allocation(self, allocation_id: int) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM allocations WHERE id = ?", (allocation_id,))

    def allocation_dict(self, a: sqlite3.Row, with_group: bool = False) -> dict:
        d = loads(a["data"])
        d.update({"created_at": a["created_at"], "modified": a["modified"]})
        d["instrument"] = self.instrument_dict(a["instrument_id"])
        if with_group:
            g = self.group(a["group_id"])
            d["group"] = self.group_dict(g) if g else None
        return d

    def obj_dict(self, o: sqlite3.Row) -> dict:
        data = loads(o["data"])
        d = {"id": o["id"], "ra": o["ra"], "dec": o["dec"]}
        for k in OBJ_COLUMNS:
            if k not in d:
                d[k] = data.get(k)
        d["tns_name"] = o["tns_name"]
        d["created_at"], d["modified"] = o["created_at"], o["modified"]
        return d

    def followup_dict(self, r: sqlite3.Row, nested: bool = True) -> dict:
        d = {"id": r["id"], "created_at": r["created_at"], "modified": r["modified"],
             "requester_id": r["requester_id"], "last_modified_by_id": r["last_modified_by_id"],
             "obj_id": r["obj_id"], "payload": loads(r["payload"]), "status": r["status"],
             "allocation_id": r["allocation_id"], "comment": r["comment"]}
        if nested:
            a = self.allocation(r["allocation_id"])
            d["allocation"] = self.allocation_dict(a, with_group=True) if a else None
            o = self.obj(r["obj_id"])
            d["obj"] = self.obj_dict(o) if o else None
            d["requester"] = self.user_dict(self.user(r["requester_id"]))
            d["watchers"] = []
            d["target_groups"] = self.groups_dicts(loads(r["target_group_ids"]))
        return d

    def comment_dict(self, c: sqlite3.Row) -> dict:
        return {"id": c["id"], "text": c["text"], "obj_id": c["obj_id"], "author_id": c["author_id"],
                "bot": bool(c["bot"]), "origin": c["origin"], "channel": c["channel"],
                "attachment_name": c["attachment_name"], "created_at": c["created_at"], "modified": c["modified"]}

    def annotation_dict(self, a: sqlite3.Row) -> dict:
        return {"id": a["id"], "obj_id": a["obj_id"], "origin": a["origin"], "data": loads(a["data"]),
                "author_id": a["author_id"], "created_at": a["created_at"], "modified": a["modified"],
                "groups": self.groups_dicts(loads(a["group_ids"]))}

    def source_row_dict(self, s: sqlite3.Row) -> dict:
        return {"id": s["id"], "obj_id": s["obj_id"], "group_id": s["group_id"], "saved_by_id": s["saved_by_id"],
                "saved_at": s["saved_at"], "active": bool(s["active"]), "requested": bool(s["requested"]),
                "unsaved_by_id": s["unsaved_by_id"], "unsaved_at": s["unsaved_at"],
                "created_at": s["created_at"], "modified": s["modified"]}

    def classifications(self, obj_id: str) -> list[dict]:
        """A non-ML classification when the obj is flagged `classified` (the only kind the sim models)."""
        f = self.flags(obj_id)
        if not f or not f["classified"]:
            return []
        return [{"id": 1, "classification": "Ia", "taxonomy_id": 1, "probability": 1.0, "ml": False,
                 "obj_id": obj_id, "author_id": None, "author_name": "sim", "origin": None,
                 "created_at": None, "modified": None, "groups": [], "votes": []}]
