"""followup: a SEDM follow-up request, following production's post/update/skip rules.

The source's requests are listed first (`GET /api/followup_request`, deleted ones included: production
never re-triggers a deleted request) and `bot.core.followup_rules.plan_followup` decides: post one
`POST /api/followup_request` (never retried blindly), raise a submitted request's priority with PUT,
or skip. The listing is not read when this run's save created the Obj on Fritz (it had no request
then). After an unclear answer (timeout, 5xx) the listing is read again before anything else is sent.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable, Literal, Mapping

from pydantic import Field, field_validator

from bot.actions.base import ActionKind, Context, KindConfig, Result
from bot.core.followup_rules import followup_body, plan_followup
from bot.facilities.sedm import sedm_payload
from bot.journal.records import ActionRecord
from bot.timeutil import palomar_night

_CHECK_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)  # the payload's shape does not depend on the date


class FollowupAction(KindConfig):
    allocation_id: int
    payload: dict[str, Any]
    validity_days: float = Field(7.0, gt=0)
    ignore_source_group_ids: list[int] = []
    target_group_ids: list[int] = []
    # live only: requests the bot may submit on this allocation per Palomar night (noon to noon local),
    # counted from the journal; past it a trigger is journaled `over_budget` and never sent for that decision
    max_per_night: int | None = Field(None, ge=0)
    # which priority is the more urgent, as Kowalski's auto-follow-up says it: asc (the default): a higher
    # number; desc: a lower one. Decides whether a submitted request's priority is raised. Policies sharing
    # an allocation must agree (refused at start otherwise).
    priority_order: Literal["asc", "desc"] = "asc"

    @field_validator("payload")
    @classmethod
    def _valid_for_sedm(cls, payload):
        sedm_payload(payload, 1.0, _CHECK_TIME)  # raises ValueError naming the key
        return payload


_MISSING_OBJECT = re.compile(r"could not find (source|obj)\b|\b(source|obj)\b[^.]* not found", re.I)


def missing_object(message: str | None) -> bool:
    """A 400 because the object is not on SkyPortal (yet): transient, the save may still be on its way."""
    return bool(message) and _MISSING_OBJECT.search(message) is not None


def own_request(listing: Iterable[Mapping], body: Mapping | None) -> Mapping | None:
    """The request in `listing` that the POST of `body` (journaled just before sending) created, if any: the
    same object and allocation, and every field of the payload sent (SkyPortal stores it with the
    defaults SEDM's `prepare_payload` adds, SP 3.7) -- its start/end dates were computed at that send, so
    no other request carries them."""
    if not body or not isinstance(body.get("payload"), Mapping):
        return None
    sent = body["payload"]

    def same_payload(stored) -> bool:
        return isinstance(stored, Mapping) and all(stored.get(k) == v for k, v in sent.items())

    return next((q for q in listing if q.get("obj_id") == body.get("obj_id")
                 and q.get("allocation_id") == body.get("allocation_id") and same_payload(q.get("payload"))
                 and "deleted" not in str(q.get("status", "")).lower()), None)


def recognised(own: Mapping, body: Mapping, message: str) -> Result:
    """The outcome of our request found in the listing (after a restart or an unclear answer), from its
    status: the facility may have rejected it or failed to submit it (SP 3.1), which is not "posted"."""
    status = str(own.get("status") or "")
    outcome = "rejected" if "rejected" in status.lower() else "failed" if status.lower().startswith("failed") else "posted"
    return outcome, {"request": body, "request_id": own.get("id"), "status": own.get("status"), "http_status": None,
                     "message": message if outcome == "posted" else f"{status} ({message})"}


def allocations(policies: Iterable) -> list[int]:
    """Every allocation some policy requests follow-up with (sorted), checked at start."""
    return sorted({p.actions.followup.allocation_id for p in policies if p.actions is not None and p.actions.followup})


class Followup(ActionKind):
    name = config_key = "followup"
    config_type = FollowupAction | None
    order = 1

    def checks(self, policies) -> dict[str, list]:
        return {"allocations": allocations(policies)}

    def plan(self, ctx: Context, policy, decision, alert: Mapping):
        f = policy.actions.followup
        return [("followup", {
            "obj_id": decision.objectId, "allocation_id": f.allocation_id, "payload": f.payload,
            "validity_days": f.validity_days, "ignore_source_group_ids": f.ignore_source_group_ids,
            "target_group_ids": f.target_group_ids, "priority_order": f.priority_order})]

    def waiting_for(self, ctx: Context, action: ActionRecord) -> str | None:
        """A follow-up never outruns a save of its source (this decision's or another policy's): SkyPortal
        refuses a request for an object it does not hold yet. Only saves of its mode count: a live bot never
        runs a save a dry-run left pending."""
        saves = [s for s in ctx.journal.actions_for_object(action.objectId, "save", pending=True)
                 if action.mode is None or s.mode in (action.mode, None)]
        if saves:
            return f"waiting for the save of {action.objectId} by {saves[0].policy}"
        return None

    @staticmethod
    def _body(r: Mapping, now: datetime) -> dict:
        return followup_body(r["obj_id"], r["allocation_id"], sedm_payload(r["payload"], r["validity_days"], now),
                             r["ignore_source_group_ids"], r["target_group_ids"])

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        return {"method": "POST", "path": "/api/followup_request", "body": self._body(action.request, ctx.now())}

    @staticmethod
    def _listing(ctx: Context, client, r: Mapping) -> list[dict]:
        view = ctx.source_view(r["obj_id"], read=False)
        if view is not None and view.created:  # a new Obj: only the requests this run made
            return [q for q in view.followup_requests if q.get("allocation_id") == r["allocation_id"]]
        return client.followup_requests(r["obj_id"], r["allocation_id"])

    @staticmethod
    def _made(ctx: Context, body: Mapping, request_id, status) -> None:
        """Tell this run's view of the source about a request just made (another policy's follow-up of
        the same source sees it)."""
        view = ctx.source_view(body["obj_id"], read=False)
        if view is not None and request_id is not None:
            view.followup_requests.append({"id": request_id, "obj_id": body["obj_id"], "status": status,
                                           "allocation_id": body["allocation_id"], "payload": body["payload"]})

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        client, r, now = ctx.service("skyportal"), action.request, ctx.now()
        listing = self._listing(ctx, client, r)
        own = own_request(listing, (action.attempt or {}).get("body"))
        if own is not None:  # killed after our POST, before its outcome was journaled: it is ours
            return recognised(own, action.attempt["body"], "own request recognised in the listing after a restart")
        plan = plan_followup(listing, r["allocation_id"], r["payload"], now, priority_order=r.get("priority_order", "asc"))
        if plan.action == "skip":
            return "skipped", {"reason": plan.reason, "request_id": (plan.request or {}).get("id")}
        if plan.action == "update":
            rid = plan.request["id"]
            client.update_followup(rid, r["obj_id"], r["allocation_id"], plan.update_payload)
            ctx.views.pop(r["obj_id"], None)  # its requests changed: read them again if needed
            return "updated", {"reason": plan.reason, "request_id": rid, "payload": plan.update_payload}
        over = self._over_budget(ctx, action, now)
        if over is not None:
            return "over_budget", over
        body = self._body(r, now)
        ctx.journal.mark_sending(action.id, {"body": body})  # before the POST: a restart can recognise it
        res = client.submit_followup(body)
        response = {"request": body, "request_id": res.request_id, "status": res.status, "message": res.message,
                    "http_status": res.http_status}
        if res.outcome == "failed" and missing_object(res.raw_message or res.message):
            return None, {"message": f"{res.message} (the source is not on Fritz yet); will retry"}
        if res.outcome != "unknown":
            self._made(ctx, body, res.request_id, res.status)
            return res.outcome, response
        ctx.views.pop(r["obj_id"], None)
        # never re-POST blindly: did the server commit it anyway? (if not, the next cycle plans afresh and
        # skips if another request is there by then)
        own = own_request(client.followup_requests(r["obj_id"], r["allocation_id"]), body)
        if own is not None:
            return recognised(own, body, f"confirmed by listing after an unclear answer ({res.message})")
        return None, {"message": f"outcome unknown ({res.message}); not in the listing, will re-plan next cycle"}

    @staticmethod
    def _over_budget(ctx: Context, action: ActionRecord, now: datetime) -> dict | None:
        """With `max_per_night` set, the requests already posted on this allocation this Palomar night; a
        response when the budget is spent (None: send)."""
        policy = ctx.policies.get(action.policy)
        cfg = getattr(policy.actions, "followup", None) if policy is not None and policy.actions is not None else None
        budget = getattr(cfg, "max_per_night", None)
        if budget is None or ctx.mode != "live":
            return None
        allocation = action.request["allocation_id"]
        start, end = palomar_night(now)
        posted = [a for a in ctx.journal.finished_actions("followup", "posted", "live", start, end)
                  if (a.request or {}).get("allocation_id") == allocation]
        if len(posted) < budget:
            return None
        return {"message": f"over budget: {len(posted)} of max_per_night {budget} requests already posted on "
                           f"allocation {allocation} this Palomar night ({start:%Y-%m-%d %H:%M} - {end:%H:%M} UTC); "
                           "not sent, and never sent later for this decision",
                "posted_tonight": len(posted), "max_per_night": budget, "allocation_id": allocation}

    def describe(self, action: Mapping) -> str:
        outcome, resp = action.get("outcome"), action.get("response") or {}
        if outcome in ("posted", "updated"):
            return (f"SEDM follow-up {'requested' if outcome == 'posted' else 'priority raised'} "
                    f"(request {resp.get('request_id')})")
        reason = resp.get("message") or resp.get("reason") or ""
        said = {"over_budget": "not sent"}.get(outcome, outcome or "not done")  # its message says "over budget"
        return f"SEDM follow-up {said}{': ' + reason if reason else ''}"
