"""comment: a comment on the source in Fritz saying what the bot changed there, for reviewers.

Planned with each main action (save, followup) of a decision, posted once those are finished, and only
if one of them changed something on Fritz (saved, requested, raised a priority): a no-op is journaled
as "skipped", never commented. The comments planned for one source at one alert (bts_p1's save and
bts_p2's trigger firing together) are one comment: the first of them (the lead) says all, the others
are journaled as "merged" into it.

The text is built from the journal only (never from a clock), so a retried POST is byte-identical and
SkyPortal merges it ("Same comment already exists."); the journal says whether it was merged.
"""

from __future__ import annotations

from typing import Mapping

from bot.actions.base import DESCRIBED, ActionKind, Context, Result, evidence_phrase, peak_phrase
from bot.journal.records import ActionRecord

CHANGED = {"save": ("saved",), "followup": ("posted", "updated")}  # outcomes that changed Fritz


def changed(main: ActionRecord) -> bool:
    """Whether a main action changed Fritz (a save that failed for one group but saved to another did)."""
    return main.outcome in CHANGED[main.action] + ("dry-run",) or \
        (main.action == "save" and main.outcome == "failed" and bool((main.response or {}).get("saved")))


class Comment(ActionKind):
    name = config_key = "comment"
    config_type = bool
    config_default = True  # a comment on each change, for reviewers in Fritz
    order = 2

    def plan(self, ctx: Context, policy, decision, alert: Mapping):
        return [(f"comment:{main}", {"obj_id": decision.objectId, "about": main, "group_ids": ctx.save_groups or None})
                for main in DESCRIBED if getattr(policy.actions, main)]

    @staticmethod
    def _siblings(ctx: Context, action: ActionRecord) -> list[ActionRecord]:
        """The comments said together with `action`, lead first: the finished comment that covered it if
        any, else the pending comments planned for the same source at the same alert (itself included)."""
        same = [c for c in ctx.journal.actions_for_object(action.objectId, "comment")  # of its mode, as main_action
                if c.candid == action.candid and (action.mode is None or c.mode in (action.mode, None))]
        lead = [c for c in same if c.status == "done" and action.id in (c.response or {}).get("covers", ())]
        return lead or [c for c in same if c.status == "pending"] or [action]

    @staticmethod
    def _mains(ctx: Context, comments: list[ActionRecord]) -> list[ActionRecord]:
        return [m for c in comments if (m := ctx.main_action(c, c.request["about"]))]

    def waiting_for(self, ctx: Context, action: ActionRecord) -> str | None:
        siblings = self._siblings(ctx, action)
        if siblings[0].id != action.id:
            return None if siblings[0].status == "done" else "waiting for the comment it is merged into"
        pending = [m for m in self._mains(ctx, siblings) if m.pending]
        if pending:
            return f"waiting for the {pending[0].action} it describes"
        return None

    def text(self, ctx: Context, action: ActionRecord) -> str | None:
        """The comment's text, or None when nothing was changed on Fritz."""
        parts, ev, version = [], None, ""
        for main in self._mains(ctx, self._siblings(ctx, action)):
            if not changed(main):
                continue
            ev = ctx.journal.get_decision_by_id(main.decision_id).evidence
            policy = ctx.policies.get(main.policy)
            version = version or ev.get("model_version") or (policy.model_version if policy else "")
            parts.append(f"{ctx.kinds[main.action].describe(main)} by {main.policy} — {evidence_phrase(ev, policy)}")
        if not parts:
            return None
        return f"BTSbot {version}: {'; '.join(parts)}{peak_phrase(ev)}, candid {ev['candid']}"

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        r, lead = action.request, self._siblings(ctx, action)[0]
        if lead.id != action.id:
            return {"merged_into": lead.id}
        return {"method": "POST", "path": f"/api/sources/{r['obj_id']}/comments",
                "body": {"text": self.text(ctx, action), "group_ids": r["group_ids"]}}

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        r, siblings = action.request, self._siblings(ctx, action)
        lead, covers = siblings[0], [c.id for c in siblings]
        if lead.id != action.id:
            return "merged", {"merged_into": lead.id, "reason": f"said by comment {lead.id}"}
        text = self.text(ctx, action)
        if text is None:
            return "skipped", {"reason": "nothing changed on Fritz", "covers": covers}
        res = ctx.service("skyportal").post_comment(r["obj_id"], text, r["group_ids"])
        response = {"comment_id": res.comment_id, "text": text, "merged": res.merged, "covers": covers}
        return "posted", response | ({"message": "Same comment already exists: merged by SkyPortal"} if res.merged else {})
