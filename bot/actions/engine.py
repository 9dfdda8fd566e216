"""The action engine: turning policy decisions into journaled, idempotent actions.

Two phases, so that a crash anywhere never duplicates or loses an action:
1. `plan` (inside the cycle's journal transaction, with the alerts that caused it): the decision and
   its actions are journaled as "pending", each with the request it will make;
2. `run_pending` executes every pending action -- this cycle's and any left unfinished by an earlier
   run -- and journals the outcome. In dry-run mode it journals what it would send and sends nothing.

What an action does is its kind's business (`bot.actions.registry`: one module per kind); the engine
only orders the actions, asks each kind whether it must wait, runs it, and applies the error policy:
an error whose `transient` is True (`SkyPortalError` of a 5xx/timeout, `TransientError`) or an
unexpected error keeps the action pending for the next cycle and never blocks the others; one whose
`transient` is False (a 4xx refusal) or a request refused before sending (ValueError) is a final
"failed" outcome.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from bot.actions.base import Context
from bot.actions.guard import GuardState, check as guard_check
from bot.actions.registry import KINDS
from bot.core.policies import Decision, Policy
from bot.journal import Journal
from bot.journal.records import ActionRecord

log = logging.getLogger(__name__)


class TransientError(Exception):
    """A service that may work later (e.g. a webhook that is down): the action stays pending."""

    transient = True


@dataclass
class ActionReport:
    action_id: int
    objectId: str
    policy: str
    action: str
    outcome: str | None  # None: still pending (a transient failure; resumed next cycle)
    detail: str = ""
    waited: bool = False  # left untouched: it waits for another action (`ActionKind.waiting_for`)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Actor:
    """Plans and executes the actions of the policies (built once at start, `Runtime.policies`).

    `services` maps a service name to its client ("skyportal": SkyPortalClient, ...); in dry-run mode
    they may be missing (nothing is read from or written to them then).
    """

    def __init__(self, journal: Journal, policies: Iterable[Policy], services: Mapping[str, Any] | None = None, *,
                 mode: str = "dry-run", now: Callable[[], datetime] = _now, links: Mapping[str, str] | None = None,
                 kinds: Mapping | None = None, max_sources_per_run: int | None = None):
        if mode not in ("dry-run", "live"):
            raise ValueError(f"mode must be dry-run or live, not {mode!r}")
        self.kinds = dict(KINDS if kinds is None else kinds)
        policies = {p.name: p for p in policies}
        services = {k: v for k, v in (services or {}).items() if v is not None}
        if mode == "live":
            needed = {name for k in self.kinds.values() for p in policies.values() for name in k.services(p)}
            missing = sorted(needed - set(services))
            if missing:
                raise ValueError(f"live mode needs a client for {', '.join(missing)}")
        self.journal, self.mode = journal, mode
        self.max_sources_per_run = max_sources_per_run
        self.guard: GuardState | None = None  # the runaway guard's verdict on the last run_pending
        shared: dict[str, Any] = {}
        for kind in self.kinds.values():
            shared.update(kind.shares(policies.values()))
        self.ctx = Context(journal, policies, services, mode, now, shared, dict(links or {}), self.kinds)

    @property
    def policies(self) -> Mapping[str, Policy]:
        return self.ctx.policies

    # -- phase 1: plan (pure journal writes) -----------------------------------------------------------
    def plan(self, decision: Decision, alert: Mapping, promoted_from: Mapping | None = None) -> list[int]:
        """Journal a decision and its pending actions (idempotent); returns the action ids. `promoted_from`:
        the dry-run decision a promotion acts on (`bot.promote`), kept in the decision's evidence."""
        policy = self.policies[decision.policy]
        evidence = decision.evidence if promoted_from is None else {**decision.evidence,
                                                                     "promoted_from": dict(promoted_from)}
        did, _ = self.journal.record_decision(decision.policy, decision.objectId, decision.candid, decision.jd,
                                              evidence, mode=self.mode)
        ids = []
        for kind in self.kinds.values():
            if kind.enabled(policy):
                for key, request in kind.plan(self.ctx, policy, decision, alert):
                    ids.append(self.journal.start_action(did, kind.name, request, key=key, mode=self.mode))
        return ids

    def decided(self, policy: str, object_id: str) -> bool:
        """Whether `policy` already decided `object_id` for this bot's mode (live never counts a dry-run)."""
        return self.journal.decided(policy, object_id, self.mode)

    def plan_source(self, object_id: str) -> list[int]:
        """Journal the per-source actions (the annotation) of a source some policy acted on, if changed."""
        ids = []
        for kind in self.kinds.values():
            planned = kind.plan_source(self.ctx, object_id)
            if planned is not None:
                did, key, request = planned
                ids.append(self.journal.start_action(did, kind.name, request, key=key, mode=self.mode))
        return ids

    def plan_annotation(self, object_id: str) -> int | None:
        ids = self.plan_source(object_id)
        return ids[0] if ids else None

    # -- phase 2: execute ------------------------------------------------------------------------------
    def _sort_key(self, a: ActionRecord):
        kind = self.kinds.get(a.action)
        return (kind.phase if kind else 9, a.decision_id, kind.order if kind else 9, a.id)

    def run_pending(self, stop: threading.Event | None = None) -> list[ActionReport]:
        """Run every pending action; with `stop` set, the actions not yet started stay pending."""
        reports: list[ActionReport] = []
        self.ctx.views.clear()  # what Fritz holds is read again by each run
        pending = sorted(self.journal.unfinished_actions(self.mode), key=self._sort_key)
        self.guard = guard_check(self.journal, pending, self.kinds, self.max_sources_per_run, self.mode,
                                 self.ctx.now().isoformat(timespec="seconds"))
        if self.guard.tripped:
            log.error("%s", self.guard.line())
            return reports
        if self.mode != "live" and self.max_sources_per_run is not None and \
                self.guard.sources > self.max_sources_per_run:
            log.warning("%d sources would be written to Fritz: in live this run would trip the guard "
                        "(limits.max_sources_per_cycle %d)", self.guard.sources, self.max_sources_per_run)
        for phase in sorted({self._sort_key(a)[0] for a in pending}):
            if not self._run_phase([a for a in pending if self._sort_key(a)[0] == phase], reports, stop):
                break
        return reports

    def _run_phase(self, todo: list[ActionRecord], reports: list[ActionReport], stop: threading.Event | None) -> bool:
        """Run one phase's actions; one that waited (e.g. for a save of another decision) is tried again
        once the others ran. False if `stop` was set."""
        while todo:
            waited, finished = [], False
            for action in todo:
                if stop is not None and stop.is_set():
                    reports.extend(r for r, _ in waited)
                    return False
                report = self._run(action)
                if report.waited:
                    waited.append((report, action))
                else:
                    reports.append(report)
                    finished = finished or report.outcome is not None
            if not finished:
                reports.extend(r for r, _ in waited)
                return True
            todo = [a for a in (self.journal.action(a.id) for _, a in waited) if a and a.pending]
        return True

    def _run(self, a: ActionRecord) -> ActionReport:
        report = ActionReport(a.id, a.objectId, a.policy, a.action, None)
        kind = self.kinds.get(a.action)
        if kind is None:
            report.detail = f"unknown action kind {a.action!r}; left pending"
            return report
        wait = kind.waiting_for(self.ctx, a)
        if wait:
            report.detail, report.waited = wait, True
            return report
        try:
            if self.mode == "dry-run":
                outcome, response = "dry-run", {"would_send": kind.would_send(self.ctx, a)}
            else:
                outcome, response = kind.execute(self.ctx, a)
        except ValueError as exc:  # a payload refused before sending
            outcome, response = "failed", {"message": str(exc)}
        except Exception as exc:
            transient = getattr(exc, "transient", None)  # SkyPortalError, TransientError
            if transient is True:
                return self._keep_pending(report, a, str(exc), f"transient failure, will resume: {exc}")
            if transient is not False:  # a bug or an unexpected answer: keep it pending, never block the others
                log.exception("%s %s for %s failed unexpectedly", a.action, a.policy, a.objectId)
                why = f"{type(exc).__name__}: {exc}"
                self.journal.note_attempt(a.id, why)
                report.detail = f"unexpected error, will resume: {why}"
                return report
            outcome, response = "failed", {"status": getattr(exc, "status", None),
                                           "message": getattr(exc, "message", str(exc))}
        if outcome is None:  # e.g. a follow-up whose fate is still unknown: resume next cycle
            self.journal.note_attempt(a.id, response.get("message", "unknown outcome"))
            report.detail = response.get("message", "")
            return report
        self.journal.finish_action(a.id, outcome, response,
                                   error=response.get("message") if outcome == "failed" else None)
        report.outcome, report.detail = outcome, response.get("message") or response.get("reason") or ""
        log.info("%s %s for %s: %s %s", a.action, a.policy, a.objectId, outcome, report.detail)
        return report

    def _keep_pending(self, report: ActionReport, a: ActionRecord, error: str, detail: str) -> ActionReport:
        self.journal.note_attempt(a.id, error)
        report.detail = detail
        log.warning("%s %s for %s: %s", a.action, a.policy, a.objectId, detail)
        return report
