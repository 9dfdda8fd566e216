"""SQLite state of the local SkyPortal stand-in: row access, writes shared by handlers and seed, and serialisation
(the schema is in schema.py, the seed in seed.py).

Everything here runs under `Store.lock` (the HTTP handlers take it for a whole request), so one
connection is shared by all server threads.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from bot.sim.skyportal.coords import angular_sep_deg
from bot.sim.skyportal.schema import CLASSIFICATIONS_TABLE, OBJ_COLUMNS, SCHEMA, dumps, loads, utcnow
from bot.sim.skyportal.seed import apply_seed, load_seed


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
            self.db.executescript(CLASSIFICATIONS_TABLE)
            if not has_schema:
                apply_seed(self, self.seed)
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

    # ---- sources, comments, follow-up requests ----------------------------------------------------
    def source_row(self, obj_id: str, group_id: int) -> sqlite3.Row | None:
        """The Source row of (obj, group), active or not."""
        return self.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (obj_id, group_id))

    def insert_source(self, obj_id: str, group_id: int, saved_by_id: int | None, now: str, active: int = 1,
                      requested: int = 0) -> None:
        self.x("INSERT INTO sources (obj_id, group_id, saved_by_id, saved_at, active, requested, created_at,"
               " modified) VALUES (?,?,?,?,?,?,?,?)", (obj_id, group_id, saved_by_id, now, active, requested, now, now))

    def insert_comment(self, obj_id: str, text: str, author_id: int, group_ids: list[int], origin: str | None = None,
                       channel: str | None = None, attachment_name: str | None = None,
                       attachment_bytes: str | None = None) -> int:
        """A bot comment (bot = 1); returns its id."""
        now = utcnow()
        cur = self.x("INSERT INTO comments (obj_id, text, author_id, bot, origin, channel, attachment_name,"
                     " attachment_bytes, group_ids, created_at, modified) VALUES (?,?,?,1,?,?,?,?,?,?,?)",
                     (obj_id, text, author_id, origin, channel, attachment_name, attachment_bytes, dumps(group_ids),
                      now, now))
        return cur.lastrowid

    def followup_request(self, request_id: int) -> sqlite3.Row | None:
        return self.q1("SELECT * FROM followup_requests WHERE id = ?", (request_id,))

    def insert_followup(self, obj_id: str, allocation_id: int, requester_id: int | None, payload: Any, status: str,
                        comment: str | None, target_group_ids: list[int], now: str | None = None) -> int:
        """A follow-up request last modified by its requester; returns its id."""
        now = now or utcnow()
        cur = self.x("INSERT INTO followup_requests (obj_id, allocation_id, requester_id, last_modified_by_id,"
                     " payload, status, comment, target_group_ids, created_at, modified)"
                     " VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (obj_id, allocation_id, requester_id, requester_id, dumps(payload), status, comment,
                      dumps(target_group_ids), now, now))
        return cur.lastrowid

    def set_followup_status(self, request_id: int, status: str) -> None:
        self.x("UPDATE followup_requests SET status = ?, modified = ? WHERE id = ?", (status, utcnow(), request_id))

    def request_instrument(self, r: sqlite3.Row) -> dict:
        """The instrument (dict, {} if missing) of a follow-up request's allocation."""
        return self.instrument_dict(self.allocation(r["allocation_id"])["instrument_id"]) or {}

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

    def classifications(self, obj_id: str, readable=None, with_groups: bool = False) -> list[dict]:
        """The obj's classifications (see classifications.py `classification_dicts`)."""
        from bot.sim.skyportal.classifications import classification_dicts

        return classification_dicts(self, obj_id, readable, with_groups)
