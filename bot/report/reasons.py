"""Why a policy did not select a source (pure): the near misses of a night report."""

from __future__ import annotations

from typing import Mapping, Sequence

from bot.core.policies import Policy


def counting(policy: Policy, alerts: Sequence[Mapping]) -> list[Mapping]:
    return [a for a in alerts if policy.counts(a)]


def why_not(policy: Policy, alerts: Sequence[Mapping]) -> str:
    """The reason `policy` does not hold at any of `alerts` (a source it did not select), in words.

    "no counting alert", "too few alerts (1 of 2 counting)", "too faint (peak 18.71 > 18.5 mag)" or
    "outside the age window (age 12.3 d, window [0, 10] d)", judged at the latest alert at which enough
    alerts count (the policy's conditions are checked in that order, as `evaluate` checks them)."""
    ordered = sorted(alerts, key=lambda a: (a["jd"], a["candid"]))
    scored = [a for a in ordered if a.get("score") is not None
              and a.get("model_version", policy.model_version) == policy.model_version]
    n = 0
    last = None
    for a in scored:
        n += policy.counts(a)
        if n >= policy.min_alerts:
            last = a
    total = sum(policy.counts(a) for a in scored)
    if total == 0:
        best = max((a["score"] for a in scored), default=None)
        return "no counting alert" + (f" (max score {best:.3f})" if best is not None else " (no scored alert)")
    if last is None:
        return f"too few alerts ({total} of {policy.min_alerts} counting)"
    peak = last.get("peakmag_so_far")
    if policy.peakmag_max is not None and (peak is None or peak > policy.peakmag_max):
        shown = "unknown" if peak is None else f"{peak:.2f}"
        return f"too faint (peak {shown} > {policy.peakmag_max:g} mag)"
    age = last.get("age")
    lo = policy.age_min_days if policy.age_min_days is not None else 0
    hi = policy.age_max_days if policy.age_max_days is not None else float("inf")
    shown = "unknown" if age is None else f"{age:.1f} d"
    return f"outside the age window (age {shown}, window [{lo:g}, {hi:g}] d)"
