"""Why a policy fired for a source, or why not (pure; no I/O): the one implementation of the reasons that
`btsbot explain`, the night report's near misses and the not-selected lists show.

`explain(policy, alerts)` walks a source's alerts in jd order exactly as `bot.core.policies.evaluate` does
and keeps, per alert, each clause of the rule (`Policy.count_clauses`, `Policy.hold_clauses`): whether the
alert counts (scored by the policy's model version, score > min_score, magpsf < alert_mag_max) and whether
the policy holds there (enough counting alerts, peak so far, age window). Its verdict is the alert at which
the policy fired, or the clause that kept it from firing at its best moment:

    "fired at alert 2 of 3 (2023-10-05 10:37:55 UTC): 2 counting alerts >= 2"
    "2 of 2 counting alerts, but peak 18.62 > 18.5 mag at every alert where 2 counted"

`reason` is the short form of the same judgement that the night report lists beside a near miss
("too few alerts (1 of 2 counting)", "too faint (peak 18.70 > 18.5 mag)", ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from bot.core.policies import Policy, score_text
from bot.timeutil import utc_text

@dataclass(frozen=True)
class AlertCheck:
    """One alert judged by one policy (see the module docstring)."""

    alert: Mapping
    index: int  # 1-based position among the source's alerts, jd order
    counts: tuple[tuple[str, bool], ...]  # Policy.count_clauses
    n_counting: int  # counting alerts up to and including this one
    holds: tuple[tuple[str, bool], ...]  # Policy.hold_clauses; () for an alert the policy does not judge

    @property
    def judged(self) -> bool:
        """Scored by the policy's model version: the alerts `evaluate` looks at."""
        return dict(self.counts)["model"]

    @property
    def counting(self) -> bool:
        return all(ok for _, ok in self.counts)

    @property
    def held(self) -> bool:
        return self.judged and all(ok for _, ok in self.holds)

    def failed(self) -> list[str]:
        """The hold clauses that fail here ("count", "peak", "age_min", "age_max")."""
        return [name for name, ok in self.holds if not ok]


@dataclass(frozen=True)
class Explanation:
    policy: Policy
    checks: tuple[AlertCheck, ...]
    fired: AlertCheck | None  # the first alert at which the policy held (evaluate's decision alert)

    @property
    def judged(self) -> list[AlertCheck]:
        return [c for c in self.checks if c.judged]

    @property
    def n_counting(self) -> int:
        return self.checks[-1].n_counting if self.checks else 0

    @property
    def reason(self) -> str:
        """Why not, in a few words (empty when it fired)."""
        if self.fired is not None:
            return ""
        p, judged = self.policy, self.judged
        if self.n_counting == 0:
            best = max((float(c.alert["score"]) for c in judged), default=None)
            return "no counting alert" + (f" (max score {score_text(best)})" if best is not None else " (no scored alert)")
        enough = [c for c in judged if c.n_counting >= p.min_alerts]
        if not enough:
            return f"too few alerts ({self.n_counting} of {p.min_alerts} counting)"
        last = enough[-1]
        failed = last.failed()
        peak, age = last.alert.get("peakmag_so_far"), last.alert.get("age")
        if "peak" in failed:
            return f"too faint (peak {'unknown' if peak is None else f'{peak:.2f}'} > {p.peakmag_max:g} mag)"
        lo = p.age_min_days if p.age_min_days is not None else 0
        hi = p.age_max_days if p.age_max_days is not None else float("inf")
        return f"outside the age window (age {'unknown' if age is None else f'{age:.1f} d'}, window [{lo:g}, {hi:g}] d)"

    @property
    def verdict(self) -> str:
        """The whole judgement in one line (see the module docstring)."""
        p, n_all = self.policy, len(self.checks)
        if self.fired is not None:
            a = self.fired.alert
            return (f"fired at alert {self.fired.index} of {n_all} ({_when(a)}): {self.fired.n_counting} counting "
                    f"alert{'s' if self.fired.n_counting != 1 else ''} >= {p.min_alerts}"
                    + "".join(f", {hold_text(p, name, a, self.fired.n_counting)}" for name, _ in self.fired.holds[1:]))
        judged = self.judged
        if not judged:
            return (f"no alert scored by model {p.model_version}" if self.checks else "no alert") + \
                   (f" ({n_all} alert{'s' if n_all != 1 else ''}: " + ", ".join(sorted(
                       {str(c.alert.get("status") or "not scored") for c in self.checks})) + ")" if self.checks else "")
        if self.n_counting == 0:
            return "no counting alert: " + _no_count(p, judged)
        enough = [c for c in judged if c.n_counting >= p.min_alerts]
        if not enough:
            counted = [c for c in judged if c.counting]
            return (f"{self.n_counting} of {p.min_alerts} counting alerts ("
                    + ", ".join(f"{_when(c.alert)} score {score_text(c.alert['score'])}" for c in counted) + ")")
        failing = {name for c in enough for name in c.failed()}
        head = f"{self.n_counting} of {p.min_alerts} counting alerts, but "
        if len(failing) == 1 or all(c.failed() == enough[0].failed() for c in enough):
            best = best_moment(p, enough)
            clauses = " and ".join(hold_text(p, name, best.alert, best.n_counting) for name in best.failed())
            where = f"at every alert where {p.min_alerts} counted" if len(enough) > 1 else f"at {_when(best.alert)}"
            return head + f"{clauses} {where}" + (f" (best: {_when(best.alert)})" if len(enough) > 1 else "")
        best = best_moment(p, enough)
        clauses = " and ".join(hold_text(p, name, best.alert, best.n_counting) for name in best.failed())
        return head + f"at its best moment ({_when(best.alert)}) {clauses}"


def explain(policy: Policy, alerts: Sequence[Mapping]) -> Explanation:
    """Judge a source's alerts (any order) by `policy`, alert by alert and clause by clause."""
    ordered = sorted(alerts, key=lambda a: (a["jd"], a["candid"]))
    checks, n, fired = [], 0, None
    for i, alert in enumerate(ordered, 1):
        counts = policy.count_clauses(alert)
        judged = policy.judges(alert)
        n += all(ok for _, ok in counts)
        check = AlertCheck(alert, i, counts, n, policy.hold_clauses(alert, n) if judged else ())
        if fired is None and check.held:
            fired = check
        checks.append(check)
    return Explanation(policy, tuple(checks), fired)


def why_not(policy: Policy, alerts: Sequence[Mapping]) -> str:
    """The short reason `policy` did not select a source ("" when it fired)."""
    return explain(policy, alerts).reason


def counting(policy: Policy, alerts: Sequence[Mapping]) -> list[Mapping]:
    return [a for a in alerts if policy.counts(a)]


def best_moment(policy: Policy, checks: Sequence[AlertCheck]) -> AlertCheck:
    """Of alerts where enough counted: the one closest to holding (fewest failing clauses, then the
    brightest peak and the age nearest the window), the latest among equals."""
    def distance(c: AlertCheck) -> tuple:
        peak, age = c.alert.get("peakmag_so_far"), c.alert.get("age")
        over = 0.0
        if policy.peakmag_max is not None:
            over += float("inf") if peak is None else max(0.0, peak - policy.peakmag_max)
        if policy.age_min_days is not None:
            over += float("inf") if age is None else max(0.0, policy.age_min_days - age)
        if policy.age_max_days is not None:
            over += float("inf") if age is None else max(0.0, age - policy.age_max_days)
        return (len(c.failed()), over, -c.index)

    return min(checks, key=distance)


def hold_text(policy: Policy, name: str, alert: Mapping, n_counting: int) -> str:
    """One hold clause at one alert, in words, with the alert's value and the policy's limit."""
    peak, age = alert.get("peakmag_so_far"), alert.get("age")
    ok = dict(policy.hold_clauses(alert, n_counting)).get(name, True)
    if name == "count":
        return f"{n_counting} counting {'>=' if ok else '<'} {policy.min_alerts}"
    if name == "peak":
        return f"peak {_num(peak, '.2f')} {'<=' if ok else '>'} {policy.peakmag_max:g} mag"
    if name == "age_min":
        return f"age {_num(age, '.1f')} d {'>=' if ok else '<'} {policy.age_min_days:g} d"
    return f"age {_num(age, '.1f')} d {'<=' if ok else '>'} {policy.age_max_days:g} d"


def count_text(policy: Policy, alert: Mapping) -> str:
    """Why an alert does (not) count, in words."""
    failed = [name for name, ok in policy.count_clauses(alert) if not ok]
    if not failed:
        return f"counts (score {score_text(alert['score'])} > {policy.min_score:g}, magpsf {alert['magpsf']:.2f} < {policy.alert_mag_max:g})"
    score, mag = alert.get("score"), alert.get("magpsf")
    words = {"model": f"not scored by {policy.model_version}" + (f" ({alert.get('status')})" if score is None and alert.get("status") else ""),
             "score": f"score {'-' if score is None else score_text(score)} <= {policy.min_score:g}",
             "mag": f"magpsf {_num(mag, '.2f')} >= {policy.alert_mag_max:g}"}
    if "model" in failed:
        return words["model"]
    return "; ".join(words[f] for f in failed)


def _no_count(policy: Policy, judged: Sequence[AlertCheck]) -> str:
    high = [c for c in judged if dict(c.counts)["score"]]
    best = max(judged, key=lambda c: float(c.alert["score"]))
    if not high:
        return f"every score <= {policy.min_score:g} (max {score_text(best.alert['score'])} at {_when(best.alert)})"
    mags = ", ".join(_num(c.alert.get("magpsf"), ".2f") for c in high)
    return (f"the {len(high)} alert{'s' if len(high) != 1 else ''} with score > {policy.min_score:g} "
            f"{'are' if len(high) != 1 else 'is'} not brighter than {policy.alert_mag_max:g} mag (magpsf {mags})")


def _num(value, fmt: str) -> str:
    return "unknown" if value is None else format(float(value), fmt)


def _when(alert: Mapping) -> str:
    return utc_text(float(alert["jd"]))
