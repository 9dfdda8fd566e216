"""comment: a comment on the source in Fritz describing what an action did, for reviewers.

One per main action of the decision (save, followup), posted once that action is finished; SkyPortal
merges an identical comment ("Same comment already exists."), which is why its POST may be retried.
"""

from __future__ import annotations

from typing import Mapping

from bot.actions.base import ActionKind, Context, Result

DESCRIBED = ("save", "followup")  # the kinds a comment describes


class Comment(ActionKind):
    name = config_key = "comment"
    config_type = bool
    config_default = True  # a comment on each action, for reviewers in Fritz
    order = 2

    def plan(self, ctx: Context, policy, decision, alert: Mapping):
        return [(f"comment:{main}", {"obj_id": decision.objectId, "about": main, "group_ids": ctx.save_groups or None})
                for main in DESCRIBED if getattr(policy.actions, main)]

    def waiting_for(self, ctx: Context, action: Mapping) -> str | None:
        about = action["request"]["about"]
        if ctx.main_action(action, about).get("status") == "pending":
            return f"waiting for the {about} it describes"
        return None

    def text(self, ctx: Context, action: Mapping) -> str:
        about = action["request"]["about"]
        main = ctx.main_action(action, about)
        ev = ctx.journal.get_decision_by_id(action["decision_id"])["evidence"]
        policy = ctx.policies.get(action["policy"])
        verb = ctx.kinds[about].describe(main)
        threshold = f" > {policy.min_score:g}" if policy else ""
        peak = f", peak {ev['peakmag_so_far']:.2f} mag" if ev.get("peakmag_so_far") is not None else ""
        version = ev.get("model_version") or (policy.model_version if policy else "")
        return (f"BTSbot {version}: {verb} by {action['policy']} — "
                f"{ev['n_counting']} alerts{threshold}, max score {ev['max_score']:.3f}{peak}, candid {ev['candid']}")

    def would_send(self, ctx: Context, action: Mapping) -> dict:
        r = action["request"]
        return {"method": "POST", "path": f"/api/sources/{r['obj_id']}/comments",
                "body": {"text": self.text(ctx, action), "group_ids": r["group_ids"]}}

    def execute(self, ctx: Context, action: Mapping) -> Result:
        r = action["request"]
        cid = ctx.service("skyportal").comment(r["obj_id"], self.text(ctx, action), r["group_ids"])
        return "posted", {"comment_id": cid}
