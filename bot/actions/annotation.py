"""annotation: the `btsbot` annotation on a source some policy acted on, kept current.

Latest score, max score, counting alerts and model version (`bot.core.policies.source_summary`);
unique per (source, origin) on SkyPortal, so it is created once (POST) and then updated with a PUT of
the id journaled from the first time, or seen in this run's read of the source ("updated"): one
request each time. Planned per
source (not per decision) each time the source's summary changes, keyed by its latest candid.
"""

from __future__ import annotations

from bot.actions.base import ActionKind, Context, Result
from bot.core.policies import source_summary
from bot.journal.records import ActionRecord

ORIGIN = "btsbot"


class Annotation(ActionKind):
    name = "annotation"
    config_key = "annotate"
    config_type = bool
    config_default = True  # the `btsbot` annotation (scores, counting alerts), kept current
    order = 3

    def plan_source(self, ctx: Context, object_id: str):
        decisions = [ctx.journal.get_decision(p, object_id) for p in ctx.policies
                     if ctx.journal.decided(p, object_id, ctx.mode)]
        annotate = [d for d in decisions if self.enabled(ctx.policies[d.policy])]
        if not annotate:
            return None
        p = ctx.policies[annotate[0].policy]
        data = source_summary(ctx.journal.alerts_for_object(object_id, p.model_version), p.model_version,
                              p.min_score, p.alert_mag_max)
        if not data:
            return None
        return (min(d.id for d in annotate), f"annotation:{data['btsbot_latest_candid']}",
                {"obj_id": object_id, "origin": ORIGIN, "data": data, "group_ids": ctx.save_groups or None})

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        r = action.request
        return {"method": "PUT or POST", "path": f"/api/sources/{r['obj_id']}/annotations",
                "body": {"origin": r["origin"], "data": r["data"], "group_ids": r["group_ids"]}}

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        r = action.request
        known = next((a.response["annotation_id"] for a in reversed(ctx.journal.actions_for_object(
            r["obj_id"], self.name)) if a.status == "done" and (a.response or {}).get("annotation_id")), None)
        view = ctx.source_view(r["obj_id"], read=False)
        if known is None and view is not None:
            known = view.annotation_id(r["origin"])
        aid, created = ctx.service("skyportal").annotate(r["obj_id"], r["origin"], r["data"], r["group_ids"],
                                                        annotation_id=known)
        return ("posted" if created else "updated"), {"annotation_id": aid}
