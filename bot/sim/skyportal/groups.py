"""Handlers of the SkyPortal stand-in for health and the user's world: sysinfo, profile, groups, streams,
allocations and instruments.
"""

from __future__ import annotations

from bot.sim.skyportal.context import (
    MAX_FOLLOWUP_REQUESTS,
    Ctx,
    int_arg,
    page_args,
    sort_args,
)
from bot.sim.skyportal.envelope import Handlers
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.schema import loads
from bot.sim.skyportal.visibility import readable_allocation


class GroupsHandlers(Handlers):
    """GET /api/sysinfo, /api/internal/profile, /api/groups[/id], /api/streams, /api/allocation[/id],
    /api/instrument[/id]."""

    def sysinfo(self, ctx: Ctx):
        return self.ok({"gitlog": [{"time": "2026-08-21T00:00:00+00:00", "sha": "8bd346c0",
                                    "description": "SkyPortal simulator (btsbot sim skyportal)",
                                    "pr_nr": None, "pr_url": None,
                                    "commit_url": "https://github.com/skyportal/skyportal/commit/8bd346c0"}],
                        "cosmology": "FlatLambdaCDM(H0=67.66, Om0=0.30966)", "cosmoref": "Planck 2018"})

    def profile(self, ctx: Ctx):
        u = ctx.user
        d = self.store.user_dict(u)
        tokens = [{"id": t["id"], "name": t["name"], "acls": loads(t["acls"]), "created_at": t["created_at"]}
                  for t in self.store.q("SELECT * FROM tokens WHERE user_id = ? ORDER BY rowid", (u["id"],))]
        d.update({"roles": loads(u["roles"]), "permissions": loads(u["permissions"]), "acls": loads(u["acls"]),
                  "tokens": tokens, "preferences": {}, "groupAdmissionRequests": [], "streams": [],
                  "is_anonymous": False})
        return self.ok(d)

    def _group_rows(self, ids: list[int] | None = None, single: bool = False) -> list:
        rows = self.store.q("SELECT * FROM groups_ ORDER BY lower(name)")
        return [g for g in rows if (ids is None or g["id"] in ids) and (single or not g["single_user_group"])]

    def groups(self, ctx: Ctx):
        single = ctx.arg("includeSingleUserGroups", False)
        name = ctx.arg("name")
        if name is not None:
            return self.ok([self.store.group_dict(g) for g in self._group_rows(single=True) if g["name"] == name])
        all_groups = []
        for g in self._group_rows(single=single):
            all_groups.append({**self.store.group_dict(g), "streams": []})
        return self.ok({
            "user_groups": [self.store.group_dict(g) for g in
                            self._group_rows(self.store.member_group_ids(ctx.user["id"]), single)],
            "user_accessible_groups": [self.store.group_dict(g) for g in self._group_rows(ctx.accessible(), single)],
            "all_groups": all_groups,
        })

    def group_one(self, ctx: Ctx, group_id: str):
        gid = int_arg("group_id", group_id)
        g = self.store.group(gid)
        if g is None:
            raise ApiError(400, f"Cannot find Group with id {gid}")
        d = self.store.group_dict(g)
        if ctx.arg("includeGroupUsers", True):
            users = []
            for gu in self.store.q("SELECT * FROM group_users WHERE group_id = ? ORDER BY user_id", (gid,)):
                u = self.store.user(gu["user_id"])
                users.append({"id": u["id"], "username": u["username"], "first_name": u["first_name"],
                              "last_name": u["last_name"], "contact_email": u["contact_email"],
                              "contact_phone": None, "oauth_uid": None, "admin": bool(gu["admin"]),
                              "can_save": bool(gu["can_save"]), "can_share_photometry": True})
            d["users"] = users
        d["streams"], d["filters"] = [], []
        return self.ok(d)

    def streams(self, ctx: Ctx):
        return self.ok([{"id": s["id"], "name": s["name"], "altdata": None, "created_at": s["created_at"],
                         "modified": s["created_at"]} for s in self.store.q("SELECT * FROM streams ORDER BY id")])

    def allocations(self, ctx: Ctx):
        rows = [a for a in self.store.q("SELECT * FROM allocations ORDER BY id")
                if ctx.admin or a["group_id"] in ctx.accessible()]
        inst_id = ctx.arg("instrument_id")
        if inst_id is not None:
            rows = [a for a in rows if str(a["instrument_id"]) == str(inst_id).strip()]
        api_type = ctx.arg("apiType")
        if api_type is not None:
            if api_type not in ("api_classname", "api_classname_obsplan"):
                raise ApiError(400, f"apitype can only be api_classname or api_classname_obsplan, not {api_type}")
            rows = [a for a in rows if (self.store.instrument_dict(a["instrument_id"]) or {}).get(api_type)]
        implements = ctx.arg("apiImplements")
        if implements is not None:
            if implements not in ("update", "delete", "get", "submit", "send", "remove", "retrieve", "queued",
                                  "remove_queue", "prepare_payload", "send_skymap", "queued_skymap",
                                  "remove_skymap", "retrieve_log", "update_status"):
                raise ApiError(400, f"apiImplements {implements} not a valid argument")
            if api_type is None:
                raise ApiError(400, "apiImplements can only be checked if apitype is specified")
            sedm = {"submit", "update", "delete", "prepare_payload"}
            rows = [a for a in rows if api_type == "api_classname" and implements in sedm
                    and (self.store.instrument_dict(a["instrument_id"]) or {}).get("api_classname") == "SEDMAPI"]
        out = []
        for a in rows:
            d = self.store.allocation_dict(a)
            d["allocation_users"] = []
            out.append(d)
        out.sort(key=lambda d: ((d["instrument"]["telescope"] or {}).get("name") or "", d["instrument"]["name"],
                                d.get("pi") or ""))
        return self.ok(out)

    def allocation_one(self, ctx: Ctx, allocation_id: str):
        aid = int_arg("allocation_id", allocation_id)
        p, n = page_args(ctx, 50, MAX_FOLLOWUP_REQUESTS)
        sort_by, order = sort_args(ctx)
        a = readable_allocation(ctx, aid)
        if a is None:
            raise ApiError(400, "Could not retrieve allocation.")
        reqs = [self.store.followup_dict(r) for r in
                self.store.q("SELECT * FROM followup_requests WHERE allocation_id = ?", (aid,))]
        reqs.sort(key=lambda r: (r["obj_id"] if sort_by == "obj" else r[sort_by], r["id"]), reverse=order == "desc")
        d = self.store.allocation_dict(a)
        d["requests"] = reqs[(p - 1) * n: p * n]
        d["ephemeris"] = {}
        d["telescope"] = d["instrument"]["telescope"]
        return self.ok({"allocation": d, "totalMatches": len(reqs)})

    def _instrument_out(self, inst_id: int) -> dict:
        d = self.store.instrument_dict(inst_id)
        d.update({"number_of_fields": 0, "region_summary": None, "log_exists": False})
        return d

    def instruments(self, ctx: Ctx):
        rows = self.store.q("SELECT id, name FROM instruments ORDER BY id")
        name = ctx.arg("name")
        return self.ok([self._instrument_out(r["id"]) for r in rows if name is None or r["name"] == name])

    def instrument_one(self, ctx: Ctx, instrument_id: str):
        iid = int_arg("instrument_id", instrument_id)
        if self.store.instrument_dict(iid) is None:
            raise ApiError(400, f"Could not load instrument with ID {iid}")
        return self.ok(self._instrument_out(iid))
