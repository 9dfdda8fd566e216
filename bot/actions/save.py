"""save: put a selected source in the policy's Fritz groups.

The source is read first (`GET /api/sources/{id}`, shared with the follow-up and the annotation of the
same run: `Context.source_view`): groups it is already saved to are "already_saved" and not posted --
and not commented, since nothing changed on Fritz. The other groups are posted in one `POST
/api/sources` (idempotent), whose `saved_to_groups` says where the source is now.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from pydantic import Field

from bot.actions.base import ActionKind, Context, KindConfig, Result
from bot.journal.records import ActionRecord


class SaveAction(KindConfig):
    group_ids: list[int] = Field(min_length=1)


def save_groups(policies: Iterable) -> list[int]:
    """Every group some policy saves to (sorted): checked at start, and where comments/annotations go."""
    return sorted({g for p in policies if p.actions is not None and p.actions.save for g in p.actions.save.group_ids})


class Save(ActionKind):
    name = config_key = "save"
    config_type = SaveAction | None
    order = 0

    def checks(self, policies) -> dict[str, list]:
        return {"groups": save_groups(policies)}

    def shares(self, policies) -> dict:
        return {"save_groups": save_groups(policies)}

    def plan(self, ctx: Context, policy, decision, alert: Mapping):
        extra = alert.get("extra") or {}
        return [("save", {"obj_id": decision.objectId, "group_ids": policy.actions.save.group_ids,
                          "ra": extra.get("ra"), "dec": extra.get("dec")})]

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        r = action.request
        return {"method": "POST", "path": "/api/sources", "body": {"id": r["obj_id"], "group_ids": r["group_ids"]}}

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        r = action.request
        view = ctx.source_view(r["obj_id"])
        already = [g for g in r["group_ids"] if g in view.active_groups]
        todo = [g for g in r["group_ids"] if g not in already]
        if not todo:
            return "already_saved", {"saved": [], "already": already, "missing": []}
        res = ctx.service("skyportal").post_source(r["obj_id"], todo, ra=r.get("ra"), dec=r.get("dec"))
        view.created = view.created or not view.exists  # created by this save: no request of anyone else
        view.exists = True
        view.groups.update({g: {"id": g, "active": True} for g in res.saved})
        response = {"saved": res.saved, "already": already, "missing": res.missing}
        if res.missing:
            return "failed", response | {"message": f"not saved to group(s) {res.missing}"}
        return ("already_saved" if not res.saved else "saved"), response

    def describe(self, action: Mapping) -> str:
        outcome, resp = action.get("outcome"), action.get("response") or {}
        groups = resp.get("saved", []) + resp.get("already", [])
        if outcome == "failed" and resp.get("saved"):  # some groups saved, some not: both changed what Fritz shows
            return f"saved to group {ids(resp['saved'])}; not saved to group {ids(resp.get('missing'))}"
        return {"saved": f"saved to group {ids(groups)}", "already_saved": f"already saved to group {ids(groups)}",
                # journals of versions whose save could land as an invitation (POST /api/sources never does)
                "pending_invitation": f"save requested (invitation pending) for group {ids(resp.get('pending'))}",
                }.get(outcome, f"save {outcome or 'not done'}")


def ids(values) -> str:
    return ", ".join(str(i) for i in values or [])
