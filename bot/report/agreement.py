"""Shadow agreement (`btsbot report --agreement`): what the bot decided against what humans did on Fritz in
the same window -- pure, over the journal's rows and the labels (`bot.backtest.labels.Label`).

Per policy, with the human time it answers to (a policy with a follow-up: the human's first follow-up
request, `triggered_at`; the others: the first human save, `saved_at`; as the backtest does):

* **both**: the bot selected the source and a human acted on it; Δt = bot decision - human time in days
  (negative: the bot was first);
* **humans only**: a human acted in the window, the bot never selected the source -- with the reason, the
  failing clause over the alerts the bot journaled (`bot.core.reasons`), or "no alert in the journal"
  when the broker's pre-filter never passed it to the bot;
* **bot only**: the bot selected the source in the window and no human ever acted on it (with its label
  when the source is classified: a negative label is a probable false positive).

`agreed` = both / (both + humans only): the share of the humans' work the bot would have done; `share` =
both / (both + bot only): how much of what the bot would do the humans did too.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from bot.core.policies import Policy
from bot.core.reasons import why_not

NO_ALERT = "no alert in the journal (the broker never passed it to the bot)"


@dataclass(frozen=True)
class Pair:
    objectId: str
    bot_jd: float | None  # the decision's alert
    human_jd: float | None
    mode: str | None = None  # of the bot's decision
    why_not: str = ""  # humans only: why the bot did not select it
    label: int | None = None

    @property
    def delta_days(self) -> float | None:
        return None if self.bot_jd is None or self.human_jd is None else self.bot_jd - self.human_jd


@dataclass
class PolicyAgreement:
    policy: str
    human_time: str  # "saved_at" or "triggered_at"
    both: list[Pair] = field(default_factory=list)
    humans_only: list[Pair] = field(default_factory=list)
    bot_only: list[Pair] = field(default_factory=list)

    @property
    def agreed(self) -> float | None:
        n = len(self.both) + len(self.humans_only)
        return len(self.both) / n if n else None

    @property
    def share(self) -> float | None:
        n = len(self.both) + len(self.bot_only)
        return len(self.both) / n if n else None

    @property
    def median_delta_days(self) -> float | None:
        deltas = [p.delta_days for p in self.both if p.delta_days is not None]
        return statistics.median(deltas) if deltas else None

    @property
    def bot_first(self) -> int:
        return sum(1 for p in self.both if p.delta_days is not None and p.delta_days < 0)


@dataclass
class Agreement:
    window: tuple[float, float]
    policies: list[PolicyAgreement]
    modes: dict[str, int]  # the window's decisions per mode
    labelled: int  # sources in the labels
    without_times: int  # labelled sources with no human save nor trigger time (they count for no policy)


def agreement(policies: Sequence[tuple[Policy, str]], decisions: Sequence[Mapping], labels: Mapping,
              alerts_of: Callable[[str], list[dict]], window: tuple[float, float],
              decided: Callable[[str, str], Mapping | None]) -> Agreement:
    """`policies`: (policy, human time) as `bot.backtest.trials.config_policies` gives them; `decisions`: the
    journal's decisions with their alert in the window; `labels`: objectId -> Label; `alerts_of(objectId)`:
    the source's journaled alerts; `decided(policy, objectId)`: its decision at any time, or None."""
    lo, hi = window
    out = []
    for policy, human_time in policies:
        pa = PolicyAgreement(policy.name, human_time)
        mine = {d["objectId"]: d for d in decisions if d["policy"] == policy.name}
        for oid, d in sorted(mine.items()):
            label = labels.get(oid)
            human = getattr(label, human_time, None) if label is not None else None
            pair = Pair(oid, d["jd"], human, d.get("mode"), label=getattr(label, "label", None))
            (pa.both if human is not None else pa.bot_only).append(pair)
        for oid, label in sorted(labels.items()):
            human = getattr(label, human_time, None)
            if human is None or not lo <= human < hi or oid in mine:
                continue
            d = decided(policy.name, oid)
            if d is not None:  # the bot selected it outside the window: both, with its Δt
                pa.both.append(Pair(oid, d["jd"], human, d.get("mode"), label=label.label))
                continue
            alerts = [a for a in alerts_of(oid) if a.get("model_version") == policy.model_version]
            pa.humans_only.append(Pair(oid, None, human, why_not=why_not(policy, alerts) if alerts else NO_ALERT,
                                       label=label.label))
        pa.both.sort(key=lambda p: p.objectId)
        out.append(pa)
    modes = dict(Counter(d.get("mode") or "unknown" for d in decisions))
    bare = sum(1 for lab in labels.values() if lab.saved_at is None and lab.triggered_at is None)
    return Agreement(window, out, modes, len(labels), bare)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} d"


def lines(ag: Agreement, utc: Callable[[float | None], str]) -> list[str]:
    """The agreement as text, one block per policy."""
    modes = ", ".join(f"{n} {m}" for m, n in sorted(ag.modes.items())) or "none"
    out = [f"shadow agreement, {utc(ag.window[0])} - {utc(ag.window[1])}: the bot's decisions ({modes}) against "
           f"{ag.labelled} labelled source(s) from Fritz"]
    if ag.without_times:
        out.append(f"  ({ag.without_times} labelled source(s) carry no human save or trigger time: they count "
                   "for no policy)")
    for pa in ag.policies:
        human = "triggered (first human follow-up request)" if pa.human_time == "triggered_at" else \
            "saved (first human save)"
        out.append(f"{pa.policy} vs humans {human}: both {len(pa.both)}, humans only {len(pa.humans_only)}, "
                   f"bot only {len(pa.bot_only)}; agreed {_ratio(pa.agreed)} of the humans' sources, "
                   f"median bot - human {_days(pa.median_delta_days)}, bot first {pa.bot_first} of {len(pa.both)}")
        out += [f"  both        {p.objectId}  bot {utc(p.bot_jd)}  human {utc(p.human_jd)}  ({_days(p.delta_days)})"
                for p in pa.both]
        out += [f"  humans only {p.objectId}  human {utc(p.human_jd)}  - {p.why_not}" for p in pa.humans_only]
        out += [f"  bot only    {p.objectId}  bot {utc(p.bot_jd)}"
                + ("" if p.label is None else f"  (label {p.label})") for p in pa.bot_only]
    return out


def as_dict(ag: Agreement) -> dict:
    def pair(p: Pair) -> dict:
        return {"objectId": p.objectId, "bot_jd": p.bot_jd, "human_jd": p.human_jd, "delta_days": p.delta_days,
                "mode": p.mode, "label": p.label, **({"why_not": p.why_not} if p.why_not else {})}

    return {"window": list(ag.window), "modes": ag.modes, "labelled": ag.labelled,
            "labelled_without_times": ag.without_times,
            "policies": [{"policy": pa.policy, "human_time": pa.human_time, "agreed": pa.agreed, "share": pa.share,
                          "median_delta_days": pa.median_delta_days, "bot_first": pa.bot_first,
                          "both": [pair(p) for p in pa.both], "humans_only": [pair(p) for p in pa.humans_only],
                          "bot_only": [pair(p) for p in pa.bot_only]} for pa in ag.policies]}
