"""One cycle of the bot -- the single function the daemon, `run --once`, the demo and the tests call.

The window is handled in chunks of at most `kowalski.chunk_alerts` new alerts, in (jd, candid) order, so
that memory does not grow with the window. Each chunk: poll (documents, cutouts, histories) -> score
(with `onnx-int8`, the alerts a policy could count in fp32: `Scorer`) -> one journal transaction (the
alerts, the decisions of the policies over the sources touched and their pending actions, the cursor).
Then, once: the annotations of the sources touched, and every pending action runs on Fritz (this
cycle's and any a previous run left unfinished).

A cycle that fails, or is stopped (`stop`, checked between chunks), keeps the chunks it committed and
nothing of the others: the cursor stopped at the first alert not committed, so the next cycle takes the
rest, and the sources owed an annotation are remembered in the journal until it is planned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from bot.actions import ActionReport
from bot.actions.guard import GuardState
from bot.core.evidence import lightcurve, thumbnails
from bot.core.drift import Drift, broker_score, differing_inputs, over_tolerance
from bot.core.policies import evaluate
from bot.runtime import Runtime
from bot.text import n

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
    n_chunks: int = 0  # chunks committed
    drift: list[float] = field(default_factory=list)  # |ours - broker's| of each alert both scored
    drifted: list[Drift] = field(default_factory=list)  # those over drift.tolerance
    guard: GuardState | None = None  # the runaway guard's verdict on this cycle's actions

    def lines(self) -> list[str]:
        out = [f"window jd [{self.window[0]:.5f}, {self.window[1]:.5f}): {n(self.n_found, 'alert')} passed the "
               f"pre-filter, {self.n_new} new, {self.n_scored} scored, {sum(self.unscorable.values())} unscorable "
               f"({n(self.kowalski_requests, 'Kowalski request')}, {n(self.n_chunks, 'chunk')}, {self.seconds:.1f} s)"]
        out += [f"  unscorable: {n} x {why}" for why, n in self.unscorable.most_common(5)]
        out += [f"  broker score differs: {d.line()}" for d in self.drifted[:5]]
        out += [f"  decision: {d['policy']} selects {d['objectId']} at candid {d['candid']} (jd {d['jd']:.5f})"
                for d in self.decisions]
        out += [f"  action: {a.action} ({a.policy}) {a.objectId}: {a.outcome or 'pending'}"
                + (f" - {a.detail}" if a.detail else "") for a in self.actions]
        if self.guard is not None and self.guard.line():
            out.append(f"  {self.guard.line()}")
        return out

    def counts(self) -> dict[str, int]:
        """What the one-line summary and the metrics report: alerts, sources, actions by outcome."""
        by = Counter((a.action, a.outcome) for a in self.actions)
        followups = {o: n for (kind, o), n in by.items() if kind == "followup"}
        return {
            "polled": self.n_found, "new": self.n_new, "scored": self.n_scored,
            "unscorable": sum(self.unscorable.values()),
            "selected": len({d["objectId"] for d in self.decisions}),
            "saved": by[("save", "saved")],
            "sedm_requested": followups.get("posted", 0), "sedm_updated": followups.get("updated", 0),
            "sedm_ignored": followups.get("ignored", 0), "sedm_rejected": followups.get("rejected", 0),
            "pending": sum(n for (_, o), n in by.items() if o is None),
            "errors": sum(n for (_, o), n in by.items() if o == "failed"),
        }

    def summary(self) -> str:
        """The one line per cycle the daemon logs at the default verbosity."""
        from bot.timeutil import jd_to_datetime

        c = self.counts()
        start, end = (f"{jd_to_datetime(jd):%Y-%m-%d %H:%M}" for jd in self.window)
        return (f"cycle {start} .. {end} UTC: alerts {c['polled']} polled, {c['new']} new, {c['scored']} scored, "
                f"{c['unscorable']} unscorable; sources {c['selected']} selected, {c['saved']} saved; "
                f"SEDM {c['sedm_requested']} requested, {c['sedm_updated']} updated, {c['sedm_ignored']} ignored, "
                f"{c['sedm_rejected']} rejected; {c['pending']} actions pending; {c['errors']} errors; "
                f"{self.seconds:.1f} s")


def _alert_rows(alerts, results, model_version: str, source: str) -> list[dict]:
    rows = []
    for alert, r in zip(alerts, results):
        cand = alert.get("candidate") or {}
        broker, broker_model = broker_score(alert, source)
        rows.append({
            "candid": r.candid if r.candid is not None else alert.get("candid"),
            "objectId": r.objectId or "(missing objectId)", "jd": r.jd if r.jd is not None else 0.0,
            "score": r.score, "precision": r.precision, "model_version": model_version, "status": r.status, "magpsf": r.magpsf,
            "peakmag_so_far": r.features.get("peakmag_so_far"), "age": r.features.get("age"),
            "drb": r.features.get("new_drb"), "extra": {"ra": cand.get("ra"), "dec": cand.get("dec"), "fid": cand.get("fid")},
            "source": source, "broker_score": broker, "broker_model": broker_model,
        })  # fmt: skip
    return rows


def run_cycle(rt: Runtime, since_jd: float | None = None, until_jd: float | None = None,
              stop: threading.Event | None = None) -> CycleReport:
    t0 = time.perf_counter()
    report: CycleReport | None = None
    for batch in rt.poller.chunks(until_jd=until_jd, since_jd=since_jd):
        if report is None:
            report = CycleReport(batch.window)
        _chunk(rt, batch, report)
        del batch  # let the chunk's documents go before the next one is fetched
        if stop is not None and stop.is_set():
            log.info("stop requested: %d chunk(s) committed, the rest of the window is left for the next cycle",
                     report.n_chunks)
            break
    _plan_annotations(rt)
    report.actions = rt.actor.run_pending(stop=stop)
    report.guard = rt.actor.guard
    report.seconds = time.perf_counter() - t0
    return report


def _chunk(rt: Runtime, batch, report: CycleReport) -> None:
    """Score one chunk and commit it: alerts, decisions, pending actions and cursor in one transaction."""
    histories = [batch.histories.get(a.get("objectId"), []) for a in batch.alerts]
    results = rt.scorer.score(batch.alerts, histories)
    rows = _alert_rows(batch.alerts, results, rt.scorer.model_version, rt.poller.source)
    _compare_broker(rt, batch.alerts, results, rows, report)
    rows = [r for r in rows if r["candid"] is not None]
    with rt.journal.transaction():
        rt.journal.record_alerts(rows)
        n_before = len(report.decisions)
        touched = _plan(rt, rows, report)
        _keep_evidence(rt, batch, report.decisions[n_before:])
        rt.journal.owe_annotations(touched)  # planned once, after the chunks (`_plan_annotations`)
        rt.poller.commit(batch)
    report.n_found += batch.n_found
    report.n_new += batch.n_new
    report.kowalski_requests += batch.n_requests
    report.n_scored += sum(r.ok for r in results)
    report.unscorable.update(r.status for r in results if not r.ok)
    report.n_chunks += 1


def _keep_evidence(rt: Runtime, batch, decisions: list[dict]) -> None:
    """For each alert at which a policy fired in this chunk: its zscaled cutouts and the light curve the bot
    had, kept in the journal (inside the chunk's transaction) so the night report needs no network."""
    by_candid = {int(a["candid"]): a for a in batch.alerts if a.get("candid") is not None}
    for candid in dict.fromkeys(int(d["candid"]) for d in decisions):
        alert = by_candid.get(candid)
        if alert is None or not isinstance(alert.get("candidate"), dict):
            continue  # decided at an alert of an earlier chunk or run: nothing at hand to keep
        try:
            rt.journal.record_evidence(candid, alert["objectId"], thumbnails(alert),
                                       lightcurve(alert["candidate"], batch.histories.get(alert["objectId"]) or []))
        except (KeyError, TypeError, ValueError) as exc:  # evidence is for people: never lose a decision over it
            log.warning("no review evidence kept for candid %s: %s", candid, exc)


def _compare_broker(rt: Runtime, alerts, results, rows: list[dict], report: CycleReport) -> None:
    """The drift monitor: the broker's own BTSbot score against ours, alert by alert (`rows` aligned with
    `alerts`). Over `drift.tolerance`: a warning naming the inputs the broker computes differently, kept
    in the row's `extra` for the report. Evidence only: nothing here changes a score or a decision."""
    report.drift += [abs(r["score"] - r["broker_score"]) for r in rows
                     if r["score"] is not None and r["broker_score"] is not None]
    for i in over_tolerance(rows, rt.config.drift.tolerance):
        row = rows[i]
        d = Drift(row["candid"], row["objectId"], row["score"], row["broker_score"], row["source"],
                  row["broker_model"], differing_inputs(row["source"], alerts[i], results[i].features))
        row["extra"]["broker_differs"] = list(d.inputs)
        report.drifted.append(d)
        log.warning("broker score differs by more than %g: %s", rt.config.drift.tolerance, d.line())


def _plan(rt: Runtime, rows: list[dict], report: CycleReport) -> list[str]:
    """Evaluate the policies over the sources a chunk touched and journal their decisions and pending
    actions (inside the chunk's transaction); returns the sources touched."""
    mv = rt.scorer.model_version
    touched = sorted({r["objectId"] for r in rows if r["score"] is not None})
    for oid in touched:
        history = rt.journal.alerts_for_object(oid, mv)
        by_candid = {a["candid"]: a for a in history}
        for policy in rt.policies:
            if rt.actor.decided(policy.name, oid):  # a live bot does not count a dry-run's decision
                continue
            decision = evaluate(policy, history)
            if decision is not None:
                rt.actor.plan(decision, by_candid[decision.candid])
                report.decisions.append({"policy": policy.name, **decision.evidence, "objectId": oid})
    return touched


def _plan_annotations(rt: Runtime) -> None:
    """Once per cycle, after its chunks: the per-source actions (the annotation update) of each source
    touched, one per source however many chunks touched it, planned and cleared from the owed ones in one
    transaction."""
    owed = rt.journal.owed_annotations()
    if not owed:
        return
    with rt.journal.transaction():
        for oid in owed:
            rt.actor.plan_source(oid)
        rt.journal.annotations_planned(owed)
