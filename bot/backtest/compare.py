"""Lab versus prod (`btsbot backtest --compare LAB.yaml`): two policy sets over the same alerts and scores
(pure). Per policy name: the sources only one of them selects ("flips", with both decision times and the
label), the sources both select at a different time (Δt), and the change of completeness, purity and
median delay."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from bot.backtest.metrics import TrialResult
from bot.backtest.run import Backtest
from bot.timeutil import utc_text


@dataclass
class PolicyDiff:
    policy: str
    prod: TrialResult | None
    lab: TrialResult | None
    only_prod: list[str] = field(default_factory=list)
    only_lab: list[str] = field(default_factory=list)
    moved: list[tuple[str, float]] = field(default_factory=list)  # (objectId, lab jd - prod jd in hours)

    def delta(self, metric: str) -> float | None:
        a = getattr(self.prod, metric, None) if self.prod else None
        b = getattr(self.lab, metric, None) if self.lab else None
        return None if a is None or b is None else b - a

    @property
    def same(self) -> bool:
        return not (self.only_prod or self.only_lab or self.moved) and self.prod is not None and self.lab is not None


def compare_sets(prod: Backtest, lab: Backtest) -> list[PolicyDiff]:
    """Per policy name of either set, what changes from prod to lab."""
    by_prod = {r.trial.name: r for r in prod.results}
    by_lab = {r.trial.name: r for r in lab.results}
    out = []
    for name in list(dict.fromkeys([*by_prod, *by_lab])):
        p, q = by_prod.get(name), by_lab.get(name)
        d = PolicyDiff(name, p, q)
        mine, theirs = (set(p.decisions) if p else set()), (set(q.decisions) if q else set())
        d.only_prod, d.only_lab = sorted(mine - theirs), sorted(theirs - mine)
        for oid in sorted(mine & theirs):
            dt = (q.decisions[oid].jd - p.decisions[oid].jd) * 24
            if abs(dt) > 1e-6:
                d.moved.append((oid, dt))
        out.append(d)
    return out


def _label(bt: Backtest, oid: str):
    info = bt.infos.get(oid)
    return None if info is None or info.label is None else info.label.label


def as_dicts(prod: Backtest, diffs: list[PolicyDiff]) -> list[dict]:
    def when(r: TrialResult | None, oid: str):
        d = r.decisions.get(oid) if r else None
        return None if d is None else utc_text(d.jd)

    return [{"policy": d.policy, "in_prod": d.prod is not None, "in_lab": d.lab is not None,
             "selected_prod": len(d.prod.selected) if d.prod else None,
             "selected_lab": len(d.lab.selected) if d.lab else None,
             "flips": [{"objectId": o, "selected_by": "prod", "prod_at": when(d.prod, o), "lab_at": None,
                        "label": _label(prod, o)} for o in d.only_prod]
                      + [{"objectId": o, "selected_by": "lab", "prod_at": None, "lab_at": when(d.lab, o),
                          "label": _label(prod, o)} for o in d.only_lab],
             "moved": [{"objectId": o, "prod_at": when(d.prod, o), "lab_at": when(d.lab, o), "dt_hours": round(dt, 4)}
                       for o, dt in d.moved],
             "d_completeness": d.delta("completeness"), "d_purity": d.delta("purity"),
             "d_median_delay_days": d.delta("median_delay_days"), "same": d.same} for d in diffs]


def precision_line(a, b) -> str:
    """How the scores of two samples of the same alerts differ (a model or precision comparison)."""
    mine = {int(r["candid"]): r for r in a.alerts if r.get("score") is not None}
    both = [(mine[int(r["candid"])], r) for r in b.alerts if r.get("score") is not None and int(r["candid"]) in mine]
    if not both:
        return "no alert scored by both"
    diff = max(abs(float(x["score"]) - float(y["score"])) for x, y in both)
    by = Counter(y.get("precision") or "?" for _, y in both)
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(by.items()))
    return f"the same {len(both):,} alerts; max |score difference| {diff:.4f}; second scores: {kinds}"


def write_text(prod: Backtest, diffs: list[PolicyDiff], out: TextIO, title: str = "prod vs lab",
               what: str = "the same alerts and scores") -> None:
    def f(x, fmt="+.3f"):
        return "-" if x is None else format(x, fmt)

    out.write(f"\n{title} ({what}):\n")
    for row in as_dicts(prod, diffs):
        where = "" if row["in_prod"] and row["in_lab"] else (" (lab only)" if row["in_lab"] else " (prod only)")
        out.write(f"{row['policy']}{where}: selected {row['selected_prod'] if row['selected_prod'] is not None else '-'}"
                  f" -> {row['selected_lab'] if row['selected_lab'] is not None else '-'}, completeness "
                  f"{f(row['d_completeness'])}, purity {f(row['d_purity'])}, median delay "
                  f"{f(row['d_median_delay_days'])} d" + ("; the same decisions" if row["same"] else "") + "\n")
        for flip in row["flips"]:
            label = "-" if flip["label"] is None else flip["label"]
            at = flip["prod_at"] or flip["lab_at"]
            out.write(f"  flip: {flip['objectId']} selected by {flip['selected_by']} only (at {at}; label {label})\n")
        for m in row["moved"]:
            out.write(f"  moved: {m['objectId']} {m['prod_at']} -> {m['lab_at']} ({m['dt_hours']:+.2f} h)\n")


def write_json(prod: Backtest, diffs: list[PolicyDiff], out: TextIO, title: str = "prod vs lab",
               what: str = "the same alerts and scores") -> None:
    """JSON Lines, one object per policy name, each with `"compare": "<title>"` and what was compared."""
    for row in as_dicts(prod, diffs):
        out.write(json.dumps({"compare": title, "compared": what, **row}) + "\n")
