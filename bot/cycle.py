"""One cycle of the bot -- the single function the daemon, `run --once`, the demo and the tests call.

poll Kowalski -> score -> journal the alerts, evaluate the policies of the sources touched and journal
their decisions and pending actions (one transaction, committed together with the poll cursor) ->
execute every pending action on Fritz (this cycle's and any a previous run left unfinished).
A cycle that fails before the transaction commits leaves nothing behind: the next one redoes it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from bot.actions import ActionReport
from bot.core.policies import evaluate
from bot.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    window: tuple[float, float]
    n_found: int = 0
    n_new: int = 0
    n_scored: int = 0
    unscorable: Counter = field(default_factory=Counter)
    decisions: list[dict] = field(default_factory=list)
    actions: list[ActionReport] = field(default_factory=list)
    kowalski_requests: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"window jd [{self.window[0]:.5f}, {self.window[1]:.5f}): {self.n_found} alerts passed the "
               f"pre-filter, {self.n_new} new, {self.n_scored} scored, {sum(self.unscorable.values())} unscorable "
               f"({self.kowalski_requests} Kowalski requests, {self.seconds:.1f} s)"]
        out += [f"  unscorable: {n} x {why}" for why, n in self.unscorable.most_common(5)]
        out += [f"  decision: {d['policy']} selects {d['objectId']} at candid {d['candid']} (jd {d['jd']:.5f})"
                for d in self.decisions]
        out += [f"  action: {a.action} ({a.policy}) {a.objectId}: {a.outcome or 'pending'}"
                + (f" - {a.detail}" if a.detail else "") for a in self.actions]
        return out


def _alert_rows(alerts, results, model_version: str) -> list[dict]:
    rows = []
    for alert, r in zip(alerts, results):
        cand = alert.get("candidate") or {}
        rows.append({
            "candid": r.candid if r.candid is not None else alert.get("candid"),
            "objectId": r.objectId or "(missing objectId)", "jd": r.jd if r.jd is not None else 0.0,
            "score": r.score, "precision": r.precision, "model_version": model_version, "status": r.status, "magpsf": r.magpsf,
            "peakmag_so_far": r.features.get("peakmag_so_far"), "age": r.features.get("age"),
            "drb": r.features.get("new_drb"), "extra": {"ra": cand.get("ra"), "dec": cand.get("dec")},
        })  # fmt: skip
    return rows


def run_cycle(rt: Runtime, since_jd: float | None = None, until_jd: float | None = None) -> CycleReport:
    t0 = time.perf_counter()
    batch = rt.poller.poll(until_jd=until_jd, since_jd=since_jd)
    report = CycleReport(batch.window, batch.n_found, batch.n_new, kowalski_requests=batch.n_requests)
    histories = [batch.histories.get(a.get("objectId"), []) for a in batch.alerts]
    results = rt.scorer.score(batch.alerts, histories)
    mv = rt.scorer.model_version
    rows = [r for r in _alert_rows(batch.alerts, results, mv) if r["candid"] is not None]
    report.n_scored = sum(r.ok for r in results)
    report.unscorable.update(r.status for r in results if not r.ok)
    touched = sorted({r["objectId"] for r in rows if r["score"] is not None})
    with rt.journal.transaction():
        rt.journal.record_alerts(rows)
        for oid in touched:
            history = rt.journal.alerts_for_object(oid, mv)
            by_candid = {a["candid"]: a for a in history}
            for policy in rt.policies:
                if rt.journal.get_decision(policy.name, oid):
                    continue
                decision = evaluate(policy, history)
                if decision is not None:
                    rt.actor.plan(decision, by_candid[decision.candid])
                    report.decisions.append({"policy": policy.name, **decision.evidence, "objectId": oid})
            rt.actor.plan_source(oid)
        rt.poller.commit(batch)
    report.actions = rt.actor.run_pending()
    report.seconds = time.perf_counter() - t0
    return report
