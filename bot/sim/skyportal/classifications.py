"""Classifications in the SkyPortal stand-in: the rows (SP models/classification.py:16-90) and how the sources
endpoints serialise them. Every function runs under `Store.lock`, as the rest of the store.

What a Classification carries (`to_dict()` of its columns): `id, classification, origin, taxonomy_id,
probability, ml, author_id, author_name, obj_id, created_at, modified`. It is read by the members of its
groups (`read = accessible_by_groups_members & ok_if_tax_and_obj_readable`, classification.py:21); `ml` says
whether a machine or a human made it (classification.py:49-55). Deleted classifications are gone (no row).
"""

from __future__ import annotations

from bot.sim.skyportal.schema import dumps, loads, utcnow


def insert_classification(store, obj_id: str, classification: str, author_id: int, *, taxonomy_id: int = 1,
                          probability: float | None = None, ml: bool = False, origin: str | None = None,
                          group_ids: list[int] | None = None, created_at: str | None = None) -> int:
    """A Classification row; `author_name` is the author's username (SkyPortal writes the username, or the
    token's id for a token post: never a secret here). Its groups default to the public group. Returns its id."""
    now = created_at or utcnow()
    u = store.user(author_id)
    if u is None:
        raise KeyError(f"no user {author_id} (a Classification's author_id is NOT NULL)")
    if group_ids is None:
        group_ids = [g for g in (store.public_group_id(),) if g is not None]
    cur = store.x("INSERT INTO classifications (obj_id, classification, taxonomy_id, probability, ml, author_id,"
                  " author_name, origin, group_ids, created_at, modified) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                  (obj_id, classification, int(taxonomy_id), probability, int(bool(ml)), author_id,
                   u["username"], origin, dumps(list(group_ids)), now, now))
    return cur.lastrowid


def classification_dicts(store, obj_id: str, readable=None, with_groups: bool = False) -> list[dict]:
    """The obj's classifications, oldest first (the list sorts them on created_at, SP
    handlers/api/sources.py:2290-2307): the rows `readable(group_ids)` lets the reader see (None: every row),
    as `to_dict()` plus `groups` -- the group dicts with `with_groups`, as GET /api/sources/{id} gives them (SP
    handlers/api/source.py:543-562, with `edits`), `[]` as the list gives them ("TODO" there) -- and `votes`; and, for an obj
    flagged `classified` (`SkyPortalSim.set_obj_flags`), one synthetic non-ML "Ia" without an author."""
    out = []
    for c in store.q("SELECT * FROM classifications WHERE obj_id = ? ORDER BY created_at, id", (obj_id,)):
        gids = loads(c["group_ids"])
        if readable is not None and not readable(gids):
            continue
        out.append({"id": c["id"], "classification": c["classification"], "origin": c["origin"],
                    "taxonomy_id": c["taxonomy_id"], "probability": c["probability"], "ml": bool(c["ml"]),
                    "author_id": c["author_id"], "author_name": c["author_name"], "obj_id": c["obj_id"],
                    "created_at": c["created_at"], "modified": c["modified"],
                    "groups": store.groups_dicts(gids) if with_groups else [], "votes": [],
                    **({"edits": []} if with_groups else {})})
    f = store.flags(obj_id)
    if f and f["classified"]:
        out.append({"id": 0, "classification": "Ia", "taxonomy_id": 1, "probability": 1.0, "ml": False,
                    "obj_id": obj_id, "author_id": None, "author_name": "sim", "origin": None,
                    "created_at": None, "modified": None, "groups": [], "votes": []})
    return out
