"""Acting on Fritz: turning policy decisions into journaled, idempotent SkyPortal actions.

Two phases, so that a crash anywhere never duplicates or loses an action:
1. `plan` (inside the cycle's journal transaction, with the alerts that caused it): the decision and
   its actions are journaled as "pending", each with the request it will make;
2. `run_pending` executes every pending action -- this cycle's and any left unfinished by an earlier
   run -- checking Fritz first where a repeat could matter (saves read the source's groups, follow-up
   requests list the source's requests and apply production's post/update/skip rules), then journals
   the outcome. In dry-run mode it journals what it would send and sends no write at all.

Comments (`comment: true`) describe each action's outcome for reviewers; the `btsbot` annotation
(latest score, max score, counting alerts, model version) is kept current with PUT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping

from bot.core.policies import Decision, Policy, source_summary
from bot.journal import Journal
from bot.skyportal.client import SkyPortalClient
from bot.skyportal.errors import SkyPortalError
from bot.core.followup_rules import followup_body, plan_followup
from bot.facilities.sedm import sedm_payload

log = logging.getLogger(__name__)
ANNOTATION_ORIGIN = "btsbot"
ORDER = {"save": 0, "followup": 1, "comment": 2, "annotation": 3}


@dataclass
class ActionReport:
    action_id: int
    objectId: str
    policy: str
    action: str
    outcome: str | None  # None: still pending (a transient failure; resumed next cycle)
    detail: str = ""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Actor:
    """Plans and executes the actions of the configured policies.

    `client` may be None in dry-run mode (nothing is read from or written to Fritz then).
    """

    def __init__(self, journal: Journal, client: SkyPortalClient | None, policies: Iterable, *, mode: str = "dry-run",
                 model_version: str = "v1.0.1", now: Callable[[], datetime] = _now):
        if mode not in ("dry-run", "live"):
            raise ValueError(f"mode must be dry-run or live, not {mode!r}")
        if mode == "live" and client is None:
            raise ValueError("live mode needs a SkyPortal client")
        self.journal, self.client, self.mode = journal, client, mode
        self.policies = {p.name: p for p in policies}
        self.model_version, self.now = model_version, now
        self.comment_groups = sorted({g for p in self.policies.values() if p.actions.save for g in p.actions.save.group_ids})

    # -- phase 1: plan (pure journal writes) -----------------------------------------------------------
    def plan(self, decision: Decision, alert: Mapping) -> list[int]:
        """Journal a decision and its pending actions (idempotent); returns the action ids."""
        cfg = self.policies[decision.policy].actions
        did, _ = self.journal.record_decision(decision.policy, decision.objectId, decision.candid, decision.jd,
                                              decision.evidence)
        extra = alert.get("extra") or {}
        ids = []
        if cfg.save:
            ids.append(self.journal.start_action(did, "save", {
                "obj_id": decision.objectId, "group_ids": cfg.save.group_ids,
                "ra": extra.get("ra"), "dec": extra.get("dec")}, key="save"))
        if cfg.followup:
            f = cfg.followup
            ids.append(self.journal.start_action(did, "followup", {
                "obj_id": decision.objectId, "allocation_id": f.allocation_id, "payload": f.payload,
                "validity_days": f.validity_days, "ignore_source_group_ids": f.ignore_source_group_ids,
                "target_group_ids": f.target_group_ids}, key="followup"))
        if cfg.comment:
            for main in ("save", "followup"):
                if getattr(cfg, main):
                    ids.append(self.journal.start_action(did, "comment", {
                        "obj_id": decision.objectId, "about": main, "group_ids": self.comment_groups or None},
                        key=f"comment:{main}"))
        return ids

    def plan_annotation(self, object_id: str) -> int | None:
        """Journal an annotation update for a source some policy acted on, if its summary changed."""
        decisions = [d for d in (self.journal.get_decision(p, object_id) for p in self.policies) if d]
        annotate = [d for d in decisions if self.policies[d["policy"]].actions.annotate]
        if not annotate:
            return None
        p = self.policies[annotate[0]["policy"]]
        data = source_summary(self.journal.alerts_for_object(object_id, self.model_version), self.model_version,
                              p.min_score, p.alert_mag_max)
        if not data:
            return None
        key = f"annotation:{data['btsbot_latest_candid']}"
        return self.journal.start_action(min(d["id"] for d in annotate), "annotation", {
            "obj_id": object_id, "origin": ANNOTATION_ORIGIN, "data": data,
            "group_ids": self.comment_groups or None}, key=key)

    # -- phase 2: execute ------------------------------------------------------------------------------
    def run_pending(self) -> list[ActionReport]:
        pending = sorted(self.journal.unfinished_actions(), key=lambda a: (a["decision_id"], ORDER.get(a["action"], 9), a["id"]))
        reports = []
        for action in pending:
            reports.append(self._run(action))
        return reports

    def _run(self, a: dict) -> ActionReport:
        report = ActionReport(a["id"], a["objectId"], a["policy"], a["action"], None)
        if a["action"] == "comment" and self._main_action(a).get("status") == "pending":
            report.detail = f"waiting for the {a['request']['about']} it describes"
            return report
        try:
            if self.mode == "dry-run":
                outcome, response = "dry-run", {"would_send": self._would_send(a)}
            else:
                outcome, response = getattr(self, f"_do_{a['action']}")(a)
        except SkyPortalError as exc:
            if exc.transient:
                self.journal.note_attempt(a["id"], str(exc))
                report.detail = f"transient failure, will resume: {exc}"
                log.warning("%s %s for %s: %s", a["action"], a["policy"], a["objectId"], report.detail)
                return report
            outcome, response = "failed", {"status": exc.status, "message": exc.message}
        except ValueError as exc:  # a payload refused before sending
            outcome, response = "failed", {"message": str(exc)}
        except Exception as exc:  # a bug or an unexpected answer: keep it pending, never block the others
            log.exception("%s %s for %s failed unexpectedly", a["action"], a["policy"], a["objectId"])
            self.journal.note_attempt(a["id"], f"{type(exc).__name__}: {exc}")
            report.detail = f"unexpected error, will resume: {type(exc).__name__}: {exc}"
            return report
        if outcome is None:  # e.g. a follow-up whose fate is still unknown: resume next cycle
            self.journal.note_attempt(a["id"], response.get("message", "unknown outcome"))
            report.detail = response.get("message", "")
            return report
        self.journal.finish_action(a["id"], outcome, response,
                                   error=response.get("message") if outcome == "failed" else None)
        report.outcome, report.detail = outcome, response.get("message") or response.get("reason") or ""
        log.info("%s %s for %s: %s %s", a["action"], a["policy"], a["objectId"], outcome, report.detail)
        return report

    def _would_send(self, a: dict) -> dict:
        r = a["request"]
        if a["action"] == "save":
            return {"method": "POST", "path": "/api/sources", "body": {"id": r["obj_id"], "group_ids": r["group_ids"]}}
        if a["action"] == "followup":
            payload = sedm_payload(r["payload"], r["validity_days"], self.now())
            return {"method": "POST", "path": "/api/followup_request",
                    "body": followup_body(r["obj_id"], r["allocation_id"], payload, r["ignore_source_group_ids"],
                                          r["target_group_ids"])}
        if a["action"] == "comment":
            return {"method": "POST", "path": f"/api/sources/{r['obj_id']}/comments",
                    "body": {"text": self._comment_text(a), "group_ids": r["group_ids"]}}
        return {"method": "PUT or POST", "path": f"/api/sources/{r['obj_id']}/annotations",
                "body": {"origin": r["origin"], "data": r["data"], "group_ids": r["group_ids"]}}

    # each returns (outcome, response); outcome None keeps the action pending
    def _do_save(self, a: dict):
        r = a["request"]
        res = self.client.save_source(r["obj_id"], r["group_ids"], ra=r.get("ra"), dec=r.get("dec"))
        response = {"saved": res.saved, "pending": res.pending, "already": res.already, "missing": res.missing}
        if res.pending:
            return "pending_invitation", response | {"message": f"invitation pending for group(s) {res.pending}"}
        if res.missing:
            return "failed", response | {"message": f"not saved to group(s) {res.missing}"}
        return ("already_saved" if not res.saved else "saved"), response

    def _followup_plan(self, r: dict, now: datetime):
        existing = self.client.followup_requests(r["obj_id"], r["allocation_id"])
        return plan_followup(existing, r["allocation_id"], r["payload"], now)

    def _do_followup(self, a: dict):
        r, now = a["request"], self.now()
        plan = self._followup_plan(r, now)
        if plan.action == "skip":
            return "skipped", {"reason": plan.reason, "request_id": (plan.request or {}).get("id")}
        if plan.action == "update":
            rid = plan.request["id"]
            self.client.update_followup(rid, r["obj_id"], r["allocation_id"], plan.update_payload)
            return "updated", {"reason": plan.reason, "request_id": rid, "payload": plan.update_payload}
        body = followup_body(r["obj_id"], r["allocation_id"], sedm_payload(r["payload"], r["validity_days"], now),
                             r["ignore_source_group_ids"], r["target_group_ids"])
        res = self.client.submit_followup(body)
        response = {"request": body, "request_id": res.request_id, "status": res.status, "message": res.message,
                    "http_status": res.http_status}
        if res.outcome != "unknown":
            return res.outcome, response
        # never re-POST blindly: did the server commit it anyway?
        again = self._followup_plan(r, now)
        if again.action != "post":
            return "posted", response | {"request_id": (again.request or {}).get("id"),
                                         "message": f"confirmed by listing after an unclear answer ({res.message})"}
        return None, {"message": f"outcome unknown ({res.message}); not in the listing, will re-plan next cycle"}

    def _do_comment(self, a: dict):
        r = a["request"]
        cid = self.client.comment(r["obj_id"], self._comment_text(a), r["group_ids"])
        return "posted", {"comment_id": cid}

    def _do_annotation(self, a: dict):
        r = a["request"]
        aid = self.client.upsert_annotation(r["obj_id"], r["origin"], r["data"], r["group_ids"])
        return "posted", {"annotation_id": aid}

    # -- comment text ---------------------------------------------------------------------------------
    def _main_action(self, comment: dict) -> dict:
        about = comment["request"]["about"]
        return next((x for x in self.journal.actions_for(comment["decision_id"]) if x["action"] == about), {})

    def _comment_text(self, a: dict) -> str:
        about = a["request"]["about"]
        main = self._main_action(a)
        ev = self.journal.get_decision_by_id(a["decision_id"])["evidence"]
        policy = Policy.from_config(self.policies[a["policy"]]) if a["policy"] in self.policies else None
        verb = _verb(about, main)
        threshold = f" > {policy.min_score:g}" if policy else ""
        peak = f", peak {ev['peakmag_so_far']:.2f} mag" if ev.get("peakmag_so_far") is not None else ""
        return (f"BTSbot {ev.get('model_version', self.model_version)}: {verb} by {a['policy']} — "
                f"{ev['n_counting']} alerts{threshold}, max score {ev['max_score']:.3f}{peak}, candid {ev['candid']}")


def _verb(about: str, main: dict | None) -> str:
    outcome = (main or {}).get("outcome")
    resp = (main or {}).get("response") or {}
    if about == "save":
        groups = resp.get("saved", []) + resp.get("already", [])
        return {"saved": f"saved to group {_ids(groups)}", "already_saved": f"already saved to group {_ids(groups)}",
                "pending_invitation": f"save requested (invitation pending) for group {_ids(resp.get('pending'))}",
                }.get(outcome, f"save {outcome or 'not done'}")
    if outcome in ("posted", "updated"):
        return f"SEDM follow-up {'requested' if outcome == 'posted' else 'priority raised'} (request {resp.get('request_id')})"
    reason = resp.get("message") or resp.get("reason") or ""
    return f"SEDM follow-up {outcome or 'not done'}{': ' + reason if reason else ''}"


def _ids(ids) -> str:
    return ", ".join(str(i) for i in ids or [])
