"""The seed of the SkyPortal stand-in: reading `seed.yaml` (or another seed) and writing it into a new database.

`seed.yaml` beside this module is the packaged default: users and their tokens, groups, telescopes,
instruments, streams, allocations (with how the simulated SEDM queue answers), objs known in advance (with
their saves by whom and when, and their classifications), follow-up requests (by whom, when, any status)
and DefaultFollowupRequests.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import yaml

from bot.sim.skyportal.classifications import insert_classification
from bot.sim.skyportal.schema import OBJ_COLUMNS, dumps, utcnow

DEFAULT_SEED = "seed.yaml"


def load_seed(seed: None | str | Path | dict) -> dict:
    """The seed as a dict: None -> the packaged default, a path -> that YAML file, a dict -> a copy."""
    if seed is None:
        text = resources.files("bot.sim.skyportal").joinpath(DEFAULT_SEED).read_text(encoding="utf-8")
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


def _when(value, default: str) -> str:
    """A seeded time as SkyPortal serialises it: naive UTC ISO (a YAML datetime, or a string with Z/offset)."""
    if value is None:
        return default
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat()


def apply_seed(store, s: dict) -> None:  # store: store.Store (which imports this module)
    """Fill a new, empty database from the seed mapping, in one transaction."""
    now = utcnow()
    store.begin()
    for g in s.get("groups", []):
        store.x(
            "INSERT INTO groups_ (id, name, nickname, description, private, single_user_group,"
            " auto_accept_requests, created_at, modified) VALUES (?,?,?,?,?,?,?,?,?)",
            (g["id"], g["name"], g.get("nickname"), g.get("description"), int(bool(g.get("private"))),
             int(bool(g.get("single_user_group"))), int(bool(g.get("auto_accept_requests"))), now, now),
        )
    for u in s.get("users", []):
        perms = list(u.get("permissions", []))
        if u.get("is_admin") and "System admin" not in perms:
            perms.append("System admin")
        store.x(
            "INSERT INTO users (id, username, first_name, last_name, contact_email, is_admin, is_bot,"
            " expired, roles, permissions, acls, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (u["id"], u["username"], u.get("first_name"), u.get("last_name"), u.get("contact_email"),
             int(bool(u.get("is_admin"))), int(bool(u.get("is_bot"))), int(bool(u.get("expired"))),
             dumps(u.get("roles", [])), dumps(perms), dumps(u.get("acls", [])), now),
        )
        for m in u.get("groups", []):
            m = {"id": m} if isinstance(m, int) else m
            store.x("INSERT INTO group_users (group_id, user_id, can_save, admin) VALUES (?,?,?,?)",
                    (m["id"], u["id"], int(m.get("can_save", True)), int(bool(m.get("admin")))))
        for t in u.get("tokens", []):
            store.x("INSERT INTO tokens (id, user_id, name, acls, created_at) VALUES (?,?,?,?,?)",
                    (str(t["id"]), u["id"], t.get("name"), dumps(t.get("acls", [])), now))
    for t in s.get("telescopes", []):
        d = {"id": t["id"], "name": t["name"], "nickname": t.get("nickname"), "lat": t.get("lat"),
             "lon": t.get("lon"), "elevation": t.get("elevation"), "diameter": t.get("diameter"),
             "skycam_link": None, "weather_link": None, "robotic": bool(t.get("robotic", False)),
             "fixed_location": bool(t.get("fixed_location", True)), "created_at": now, "modified": now}
        store.x("INSERT INTO telescopes (id, data) VALUES (?,?)", (t["id"], dumps(d)))
    for i in s.get("instruments", []):
        d = {"id": i["id"], "name": i["name"], "type": i.get("type"), "band": i.get("band"),
             "telescope_id": i.get("telescope_id"), "filters": i.get("filters", []),
             "api_classname": i.get("api_classname"), "api_classname_obsplan": i.get("api_classname_obsplan"),
             "listener_classname": "SEDMListener" if i.get("api_classname") == "SEDMAPI" else None,
             "sensitivity_data": None, "configuration_data": None, "treasuremap_id": None,
             "tns_id": None, "region": None, "has_fields": False, "has_region": False,
             "created_at": now, "modified": now}
        store.x("INSERT INTO instruments (id, name, telescope_id, data) VALUES (?,?,?,?)",
                (i["id"], i["name"], i.get("telescope_id"), dumps(d)))
    for st in s.get("streams", []):
        store.x("INSERT INTO streams (id, name, created_at) VALUES (?,?,?)", (st["id"], st["name"], now))
    for a in s.get("allocations", []):
        d = {"id": a["id"], "pi": a.get("pi"), "proposal_id": a.get("proposal_id"),
             "validity_ranges": a.get("validity_ranges"), "hours_allocated": a.get("hours_allocated", 0.0),
             "default_share_group_ids": a.get("default_share_group_ids"), "types": a.get("types", ["triggered"]),
             "group_id": a["group_id"], "instrument_id": a["instrument_id"]}
        store.x("INSERT INTO allocations (id, group_id, instrument_id, facility, data, created_at, modified)"
                " VALUES (?,?,?,?,?,?,?)",
                (a["id"], a["group_id"], a["instrument_id"], a.get("facility", "ok"), dumps(d), now, now))
    for o in s.get("objs", []):
        extra = {k: v for k, v in o.items() if k in OBJ_COLUMNS and k not in ("id", "ra", "dec")}
        store.insert_obj(o["id"], o["ra"], o["dec"], extra)
        if o.get("classified") or o.get("spectra"):
            store.set_flags(o["id"], classified=o.get("classified"), spectra=o.get("spectra"))
        for sv in o.get("saves", []):  # one Source row per (obj, group): saved_at is the row's insert time
            store.insert_source(o["id"], sv["group_id"], sv.get("saved_by"), _when(sv.get("saved_at"), now),
                                int(bool(sv.get("active", True))), int(bool(sv.get("requested", False))))
        for c in o.get("classifications", []):
            insert_classification(store, o["id"], c["classification"], c["author_id"],
                                  taxonomy_id=c.get("taxonomy_id", 1), probability=c.get("probability"),
                                  ml=bool(c.get("ml", False)), origin=c.get("origin"), group_ids=c.get("group_ids"),
                                  created_at=_when(c.get("created_at"), now))
    for r in s.get("followup_requests", []):
        store.insert_followup(r["obj_id"], r["allocation_id"], r.get("requester_id"), r.get("payload", {}),
                              r.get("status", "submitted"), r.get("comment"), r.get("target_group_ids", []),
                              _when(r.get("created_at"), now))
    for d in s.get("default_followup_requests", []):
        store.x("INSERT INTO default_followups (data) VALUES (?)", (dumps(d),))
    store.x("INSERT INTO meta (key, value) VALUES ('seeded_at', ?)", (now,))
    store.commit()
