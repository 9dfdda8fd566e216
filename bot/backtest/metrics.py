"""Backtest metrics as the BTSbot paper defines them (Rehemtulla et al. 2024) -- pure, no I/O.

Per trial policy, at source level: a source is selected when the policy holds at one of its alerts
(`bot.core.policies.evaluate`, exactly as the cycle decides); TP = selected and labelled 1, FP =
selected and labelled 0, FN = labelled 1 and not selected; completeness = TP/(TP+FN), purity =
TP/(TP+FP), overall and per peak-magnitude bin (17.0-18.5 in 0.25 mag steps). `selected` (and gained /
lost against the config) counts every source the policy selects. The paper's exclusion -- sources with
fewer than 2 scored alerts in the sample -- applies to completeness and purity (TP, FP, FN) only: the
selected sources it leaves out are `selected_excluded`. Unlabelled sources count in `selected` but in no
ratio, and are listed. With human times, the delay of each selected source is decision jd - human jd in
days (negative: the bot was first). A ratio over fewer than `FEW_SOURCES` labelled sources is flagged.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from bot.backtest.trials import Trial
from bot.core.policies import Decision, evaluate

MIN_ALERTS_IN_SAMPLE = 2
FEW_SOURCES = 10  # a completeness or purity over fewer labelled sources is shown with its n
MAG_EDGES = tuple(round(17.0 + 0.25 * i, 2) for i in range(7))  # 17.00, 17.25, ..., 18.50


def bin_names() -> list[str]:
    return [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(MAG_EDGES, MAG_EDGES[1:])]


def mag_bin(peakmag: float | None) -> int | None:
    """Index of the bin holding peakmag (the last bin includes 18.5), None outside 17.0-18.5."""
    if peakmag is None or not MAG_EDGES[0] <= peakmag <= MAG_EDGES[-1]:
        return None
    for i, hi in enumerate(MAG_EDGES[1:]):
        if peakmag < hi:
            return i
    return len(MAG_EDGES) - 2


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class SourceInfo:
    objectId: str
    alerts: list[dict]  # every alert of the sample, in (jd, candid) order
    n_scored: int  # distinct candids with a score
    peakmag: float | None  # brightest magnitude known at its alerts (magpsf, peakmag_so_far)
    first_jd: float
    label: object = None  # labels.Label or None

    @property
    def eligible(self) -> bool:
        return self.n_scored >= MIN_ALERTS_IN_SAMPLE


def sources(alerts: Iterable[Mapping], labels: Mapping | None = None) -> dict[str, SourceInfo]:
    by_object: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_object[a["objectId"]].append(a)
    out = {}
    for oid, rows in by_object.items():
        rows.sort(key=lambda a: (a["jd"], a["candid"]))
        mags = [m for a in rows for m in (a.get("magpsf"), a.get("peakmag_so_far")) if m is not None]
        out[oid] = SourceInfo(oid, rows, len({a["candid"] for a in rows if a.get("score") is not None}),
                              min(mags) if mags else None, rows[0]["jd"], (labels or {}).get(oid))
    return out


@dataclass
class TrialResult:
    trial: Trial
    decisions: dict[str, Decision]  # every source it selects, excluded ones too
    selected: list[str]  # every source selected (excluded from the ratios or not)
    tp: list[str] = field(default_factory=list)
    fp: list[str] = field(default_factory=list)
    fn: list[str] = field(default_factory=list)
    unlabelled_selected: list[str] = field(default_factory=list)
    selected_excluded: list[str] = field(default_factory=list)  # selected, but in no ratio (< 2 scored alerts)
    bins: list[dict] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)  # objectId -> days (negative: bot first)
    days_from_first_alert: dict[str, float] = field(default_factory=dict)
    gained: list[str] | None = None
    lost: list[str] | None = None
    labelled: bool = False

    @property
    def completeness(self) -> float | None:
        return _ratio(len(self.tp), len(self.tp) + len(self.fn)) if self.labelled else None

    @property
    def purity(self) -> float | None:
        return _ratio(len(self.tp), len(self.tp) + len(self.fp)) if self.labelled else None

    @property
    def n_completeness(self) -> int:
        """The labelled sources completeness rests on (TP + FN)."""
        return len(self.tp) + len(self.fn)

    @property
    def n_purity(self) -> int:
        """The labelled sources purity rests on (TP + FP)."""
        return len(self.tp) + len(self.fp)

    @property
    def median_delay_days(self) -> float | None:
        return median(list(self.delays.values()))

    @property
    def bot_first_fraction(self) -> float | None:
        return _ratio(sum(d < 0 for d in self.delays.values()), len(self.delays))


def evaluate_trial(trial: Trial, infos: Mapping[str, SourceInfo], labelled: bool) -> TrialResult:
    decisions = {oid: d for oid, info in infos.items() if (d := evaluate(trial.policy, info.alerts)) is not None}
    r = TrialResult(trial, decisions, sorted(decisions), labelled=labelled)
    r.selected_excluded = sorted(o for o in decisions if not infos[o].eligible)
    counts = [dict(tp=0, fp=0, fn=0) for _ in MAG_EDGES[1:]]
    for oid, info in sorted(infos.items()):
        chosen = oid in decisions
        if chosen:
            r.days_from_first_alert[oid] = decisions[oid].jd - info.first_jd
        if info.label is None:
            if chosen:
                r.unlabelled_selected.append(oid)
            continue
        human = getattr(info.label, trial.human_time)
        if chosen and human is not None:
            r.delays[oid] = decisions[oid].jd - human
        if not info.eligible:  # the paper's exclusion: in no ratio
            continue
        kind = ("tp" if info.label.label else "fp") if chosen else ("fn" if info.label.label else None)
        if kind is None:
            continue
        getattr(r, kind).append(oid)
        b = mag_bin(info.peakmag)
        if b is not None:
            counts[b][kind] += 1
    r.bins = [{"bin": name, "lo": lo, "hi": hi, **c,
               "completeness": _ratio(c["tp"], c["tp"] + c["fn"]) if labelled else None,
               "purity": _ratio(c["tp"], c["tp"] + c["fp"]) if labelled else None}
              for name, lo, hi, c in zip(bin_names(), MAG_EDGES, MAG_EDGES[1:], counts)]
    return r


def compare(results: list[TrialResult], baseline: Mapping[str, TrialResult]) -> None:
    """Sources each trial gains and loses against the config policy it derives from (in place)."""
    for r in results:
        base = baseline.get(r.trial.base)
        if base is not None:
            mine, theirs = set(r.selected), set(base.selected)
            r.gained, r.lost = sorted(mine - theirs), sorted(theirs - mine)
