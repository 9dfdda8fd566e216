"""Promotion: a live bot acting on what it decided in shadow (`btsbot run --once --promote-dry-run`).

A live bot never counts a dry-run decision as done, but it acts on a source only at the source's next
alert (`bot.cycle`). A supernova selected in dry-run at 10 UTC is lost if the switch to live comes at 11
and no alert follows. Promotion closes that gap, explicitly: each dry-run decision

* of a policy the config still has,
* whose deciding alert is younger than `max_age_days` (the alert's time, not the time it was journaled:
  a backfill in dry-run today of a 2023 night promotes nothing of 2023), and
* whose policy still holds over the source's journaled alerts (the current thresholds: a policy
  tightened since is judged as it is now, and the reason is given when it no longer holds)

is decided again in live mode. The journal's decision row of (policy, source) becomes live in the same
transaction as its live actions are planned (`Journal.record_decision`'s shadow -> live takeover), so a
promotion happens exactly once: a second run finds no dry-run decision left, and a cycle that crashes
after the promotion finds the live actions pending and runs them. The runaway guard
(`limits.max_sources_per_cycle`) judges the promoted actions like any others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.policies import evaluate
from bot.core.reasons import why_not
from bot.journal.records import DecisionRecord
from bot.timeutil import datetime_to_jd, utc_text

DEFAULT_MAX_AGE_DAYS = 2.0


@dataclass(frozen=True)
class Promotion:
    policy: str
    objectId: str
    shadow_jd: float | None  # the dry-run decision's alert
    outcome: str  # "promoted", "too old", "no longer holds", "policy not configured"
    detail: str = ""

    def line(self) -> str:
        head = f"{self.outcome}: {self.policy} {self.objectId} (selected in dry-run at {utc_text(self.shadow_jd)})"
        return head + (f" - {self.detail}" if self.detail else "")


@dataclass
class PromotionReport:
    max_age_days: float
    promotions: list[Promotion] = field(default_factory=list)

    @property
    def promoted(self) -> list[Promotion]:
        return [p for p in self.promotions if p.outcome == "promoted"]

    def lines(self) -> list[str]:
        n = len(self.promoted)
        head = (f"promote: {n} of {len(self.promotions)} dry-run decision(s) acted on live "
                f"(younger than {self.max_age_days:g} d, policy still holding)")
        return [head] + [f"  {p.line()}" for p in self.promotions]


def promote_dry_run(rt, max_age_days: float = DEFAULT_MAX_AGE_DAYS) -> PromotionReport:
    """Plan, live, the dry-run decisions that qualify (see the module docstring); the actions run in the
    cycle that follows (`Actor.run_pending`), which also plans the promoted sources' annotations (owed in
    the same transaction)."""
    if rt.actor.mode != "live":
        raise ValueError("promotion acts on Fritz: it needs mode live")
    report = PromotionReport(max_age_days)
    now_jd = datetime_to_jd(rt.actor.ctx.now())
    policies = {p.name: p for p in rt.policies}
    with rt.journal.transaction():
        acted: set[str] = set()
        for shadow in rt.journal.dry_run_decisions():
            promotion = _promote_one(rt, shadow, policies.get(shadow.policy), now_jd, max_age_days)
            report.promotions.append(promotion)
            if promotion.outcome == "promoted":
                acted.add(promotion.objectId)
        rt.journal.owe_annotations(sorted(acted))
    return report


def _promote_one(rt, shadow: DecisionRecord, policy, now_jd: float, max_age_days: float) -> Promotion:
    name, oid, jd = shadow.policy, shadow.objectId, shadow.jd
    if policy is None:
        return Promotion(name, oid, jd, "policy not configured", "the config has no policy of that name now")
    age = None if jd is None else now_jd - float(jd)
    if age is None or age >= max_age_days:
        return Promotion(name, oid, jd, "too old",
                         f"its alert is {age:.1f} d old (--max-age-days {max_age_days:g})" if age is not None
                         else "no alert time")
    history = rt.journal.alerts_for_object(oid, policy.model_version)
    decision = evaluate(policy, history)
    if decision is None:
        return Promotion(name, oid, jd, "no longer holds", why_not(policy, history))
    alert = next(a for a in history if a["candid"] == decision.candid)
    rt.actor.plan(decision, alert, promoted_from={"candid": shadow.candid, "jd": jd, "time": shadow.time})
    return Promotion(name, oid, jd, "promoted", f"live decision at {utc_text(decision.jd)}")
