"""What a night report shows, read from the journal (`btsbot report`).

A night (`night_window`) runs from local noon at Palomar on the given date to local noon the next day,
so it holds the whole night that starts that date's evening. Sources acted on are those with a policy
decision in the window; near misses are sources with alerts counting for some policy in the window
that no policy ever selected (with the reason per policy); other sources seen are listed as not
selected with their best score.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.core.drift import DriftSummary
from bot.core.policies import Policy
from bot.journal import Journal
from bot.core.reasons import counting, explain
from bot.timeutil import datetime_to_jd

PALOMAR_TZ = ZoneInfo("America/Los_Angeles")


def night_window(day: str) -> tuple[float, float]:
    """[jd_from, jd_to) of the night starting on the evening of `day` (YYYY-MM-DD) at Palomar."""
    d = date.fromisoformat(day)
    start = datetime.combine(d, time(12), PALOMAR_TZ)
    end = datetime.combine(d + timedelta(days=1), time(12), PALOMAR_TZ)
    return datetime_to_jd(start), datetime_to_jd(end)


@dataclass
class Acted:
    objectId: str
    alerts: list[dict]  # the source's alerts up to the end of the window, jd order
    decisions: list[dict]  # its decisions (every night), with their actions under "actions"
    evidence: dict | None = None  # cutouts and light curve at its first decision's alert (`Journal.evidence`)


@dataclass
class NotSelected:
    objectId: str
    n_alerts: int
    max_score: float | None
    reasons: dict[str, str]  # policy -> why not, in a few words (`bot.core.reasons`)
    near_miss: bool
    alerts: list[dict] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)  # policy -> the whole judgement (`btsbot explain`)

    def reason_line(self) -> str:
        """The reasons, policies with the same one named together ("bts_p1, bts_p2: no counting alert ...")."""
        by_reason: dict[str, list[str]] = {}
        for policy, why in self.reasons.items():
            by_reason.setdefault(why, []).append(policy)
        return "; ".join(f"{', '.join(ps)}: {why}" for why, ps in by_reason.items())


@dataclass
class Night:
    window: tuple[float, float]
    policies: list[Policy]
    url: str
    alerts: list[dict]
    acted: list[Acted]
    not_selected: list[NotSelected]
    errors: list[dict]  # actions that failed
    pending: list[dict]  # actions journaled and not finished
    unscorable: Counter
    drift: DriftSummary  # the broker's own score against ours (evidence, never a decision)

    @property
    def near_misses(self) -> list[NotSelected]:
        return [s for s in self.not_selected if s.near_miss]

    def link(self, object_id: str) -> str:
        return f"{self.url.rstrip('/')}/source/{object_id}"


def build_night(journal: Journal, policies: list[Policy], url: str, since_jd: float, until_jd: float,
                drift_tolerance: float = 0.05) -> Night:
    alerts = sorted(journal.history(since_jd=since_jd, until_jd=until_jd, kind="alerts"),
                    key=lambda a: (a["jd"], a["candid"]))
    decided = journal.history(since_jd=since_jd, until_jd=until_jd, kind="decisions")
    by_object: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_object[a["objectId"]].append(a)
    acted = []
    decided_now = {d["objectId"] for d in decided}
    for oid in sorted(decided_now | {o for o in by_object if journal.decided_any(o)}):
        every = journal.alerts_for_object(oid)
        history = [a for a in every if a["jd"] < until_jd]
        jd_of = {int(a["candid"]): a["jd"] for a in every}
        decisions = [d for p in policies if (d := journal.get_decision(p.name, oid))]
        names = {p.name for p in policies}
        decisions += [d for d in decided if d["objectId"] == oid and d["policy"] not in names]
        for i, d in enumerate(decisions):  # the night's view of a decision: with its actions of the night
            acts = journal.actions_for(d["id"])
            tonight = [a for a in acts if since_jd <= action_jd(a, d, jd_of) < until_jd]
            decisions[i] = {**d, "actions": tonight,
                            "elsewhere": other_nights([a for a in acts if a not in tonight], d, jd_of, since_jd)}
        if oid in decided_now or any(d["actions"] for d in decisions):
            ordered = sorted(decisions, key=lambda d: (d["jd"] or 0, d["policy"]))
            evidence = next((e for d in ordered if d.get("candid") is not None
                             and (e := journal.evidence(d["candid"])) is not None), None)
            acted.append(Acted(oid, history, ordered, evidence))
    ever_selected = {d["objectId"] for p in policies for d in _decided_objects(journal, p.name, by_object)}
    not_selected = []
    for oid, rows in sorted(by_object.items()):
        if oid in ever_selected or oid in {a.objectId for a in acted}:
            continue
        scores = [a["score"] for a in rows if a["score"] is not None]
        judged = {p.name: explain(p, rows) for p in policies}
        not_selected.append(NotSelected(oid, len(rows), max(scores) if scores else None,
                                        {n: e.reason for n, e in judged.items()},
                                        any(counting(p, rows) for p in policies), rows,
                                        {n: e.verdict for n, e in judged.items()}))
    not_selected.sort(key=lambda s: (not s.near_miss, -(s.max_score or 0), s.objectId))
    actions = journal.history(since_jd=since_jd, until_jd=until_jd, kind="actions")
    errors = [a for a in actions if a["outcome"] == "failed" or (a["error"] and a["status"] != "done")]
    pending = [a for a in journal.unfinished_actions()]
    unscorable = Counter(a["status"] for a in alerts if a["score"] is None)
    return Night((since_jd, until_jd), policies, url, alerts, acted, not_selected, errors, pending, unscorable,
                 DriftSummary.of(alerts, drift_tolerance))


def action_jd(action: dict, decision: dict, jd_of: dict[int, float]) -> float:
    """The alert time an action belongs to: an annotation's latest alert (its key names the candid), else
    the decision's alert (a save, a follow-up and their comments are made when the policy fires)."""
    key = action.get("key") or ""
    if key.startswith("annotation:"):
        try:
            return jd_of.get(int(key.split(":", 1)[1]), decision["jd"] or 0.0)
        except ValueError:
            pass
    return decision["jd"] or 0.0


def other_nights(actions: list[dict], decision: dict, jd_of: dict[int, float], since_jd: float) -> list[str]:
    """The decision's actions of other nights, in a line per kind: "annotation updated 15x later, last 2023-10-29"."""
    from bot.timeutil import jd_to_datetime

    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for a in actions:
        jd = action_jd(a, decision, jd_of)
        groups[(a["action"], a.get("outcome") or a["status"], "earlier" if jd < since_jd else "later")].append(jd)
    out = []
    for (kind, outcome, when), jds in sorted(groups.items(), key=lambda kv: min(kv[1])):
        last = jd_to_datetime(max(jds)).strftime("%Y-%m-%d")
        times = f" {len(jds)}x" if len(jds) > 1 else ""
        out.append(f"{kind} {outcome}{times} {when}, {'last' if len(jds) > 1 else 'on'} {last}")
    return out


def _decided_objects(journal: Journal, policy: str, by_object) -> list[dict]:
    return [d for oid in by_object if (d := journal.get_decision(policy, oid))]
