"""Source-level policies (pure): when does a source deserve an action?

A policy is evaluated on a source's scored alerts so far, in jd order. An alert *counts* when it was
scored by the policy's model version, its score is > `min_score` and its own magpsf < `alert_mag_max`.
The policy holds at an alert when at least `min_alerts` alerts up to it count, its peakmag_so_far is
<= `peakmag_max` (if set) and its age is inside the optional window; the decision time is the first
alert at which it holds. Alerts are plain dicts: objectId, candid, jd, score, magpsf, peakmag_so_far,
age, model_version (unscorable alerts have score None and never count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class Policy:
    name: str
    min_score: float = 0.5
    min_alerts: int = 2
    alert_mag_max: float = 19.0
    peakmag_max: float | None = None
    age_min_days: float | None = None
    age_max_days: float | None = None
    model_version: str | None = None  # required: the scores of this model version are the ones that count

    def __post_init__(self):
        if not self.model_version:
            raise ValueError(f"policy {self.name!r} needs a model_version (the loaded model's, see build_policies)")

    def count_clauses(self, alert: Mapping) -> tuple[tuple[str, bool], ...]:
        """Whether an alert counts, clause by clause: ("model", scored by this policy's model version),
        ("score", score > min_score), ("mag", magpsf < alert_mag_max). It counts when all hold."""
        score, mag = alert.get("score"), alert.get("magpsf")
        return (("model", score is not None and alert.get("model_version", self.model_version) == self.model_version),
                ("score", score is not None and score > self.min_score),
                ("mag", mag is not None and mag < self.alert_mag_max))

    def judges(self, alert: Mapping) -> bool:
        """Whether the rule looks at this alert at all: scored, by this policy's model version."""
        return dict(self.count_clauses(alert))["model"]

    def counts(self, alert: Mapping) -> bool:
        return all(ok for _, ok in self.count_clauses(alert))

    def hold_clauses(self, alert: Mapping, n_counting: int) -> tuple[tuple[str, bool], ...]:
        """Whether the policy holds at an alert with `n_counting` counting alerts up to it, clause by clause:
        ("count", n_counting >= min_alerts), then the configured ones of ("peak", peakmag_so_far <=
        peakmag_max), ("age_min", age >= age_min_days), ("age_max", age <= age_max_days). It holds when all do."""
        out = [("count", n_counting >= self.min_alerts)]
        peak, age = alert.get("peakmag_so_far"), alert.get("age")
        if self.peakmag_max is not None:
            out.append(("peak", peak is not None and peak <= self.peakmag_max))
        if self.age_min_days is not None:
            out.append(("age_min", age is not None and age >= self.age_min_days))
        if self.age_max_days is not None:
            out.append(("age_max", age is not None and age <= self.age_max_days))
        return tuple(out)

    def describe(self) -> str:
        parts = [f"{self.min_alerts} alert{'s' if self.min_alerts != 1 else ''} > {self.min_score:g}",
                 f"magpsf < {self.alert_mag_max:g}"]
        if self.peakmag_max is not None:
            parts.append(f"peak <= {self.peakmag_max:g} mag")
        if self.age_min_days is not None or self.age_max_days is not None:
            parts.append(f"age in [{self.age_min_days or 0:g}, {self.age_max_days if self.age_max_days is not None else 'inf'}] d")
        return ", ".join(parts)


@dataclass(frozen=True)
class Decision:
    policy: str
    objectId: str
    candid: int  # the alert at which the policy first held
    jd: float
    n_counting: int
    counting_candids: tuple[int, ...]
    max_score: float
    score: float  # of the deciding alert
    magpsf: float
    peakmag_so_far: float | None
    age: float | None
    model_version: str

    @property
    def evidence(self) -> dict:
        return {
            "candid": self.candid, "jd": self.jd, "n_counting": self.n_counting,
            "counting_candids": list(self.counting_candids), "max_score": self.max_score, "score": self.score,
            "magpsf": self.magpsf, "peakmag_so_far": self.peakmag_so_far, "age": self.age,
            "model_version": self.model_version,
        }  # fmt: skip


def build_policies(configs: Sequence, model_versions: Sequence[str]) -> list[Policy]:
    """The rules of the configured policies (`policies[]` of the config); what each does when it holds is
    beside the rule, not in it (`bot.actions.policy.ActingPolicy`).

    A policy that states no `model_version` takes the first of `model_versions` (the loaded model's);
    one naming a version none of them provides is refused with a ValueError naming
    `policies.N.model_version` (it would silently never fire).
    """
    if not model_versions:
        raise ValueError("no model loaded: policies need a model version")
    out = []
    for i, cfg in enumerate(configs):
        version = cfg.model_version or model_versions[0]
        if version not in model_versions:
            raise ValueError(f"policies.{i}.model_version: {version!r} ({cfg.name}) is not a loaded model's "
                             f"version ({', '.join(model_versions)})")
        rules = {f: getattr(cfg, f) for f in Policy.__dataclass_fields__ if f != "model_version"}
        out.append(Policy(**rules, model_version=version))
    return out


def _holds(policy: Policy, alert: Mapping, n_counting: int) -> bool:
    return all(ok for _, ok in policy.hold_clauses(alert, n_counting))


def evaluate(policy: Policy, alerts: Iterable[Mapping]) -> Decision | None:
    """The decision for one source (its alerts in any order), or None if the policy never holds."""
    ordered = sorted(alerts, key=lambda a: (a["jd"], a["candid"]))
    counting: list[Mapping] = []
    for alert in ordered:
        if not policy.judges(alert):
            continue
        if policy.counts(alert):
            counting.append(alert)
        if _holds(policy, alert, len(counting)):
            return Decision(
                policy=policy.name, objectId=alert["objectId"], candid=int(alert["candid"]), jd=float(alert["jd"]),
                n_counting=len(counting), counting_candids=tuple(int(a["candid"]) for a in counting),
                max_score=max(float(a["score"]) for a in counting), score=float(alert["score"]),
                magpsf=float(alert["magpsf"]), peakmag_so_far=alert.get("peakmag_so_far"), age=alert.get("age"),
                model_version=policy.model_version,
            )  # fmt: skip
    return None


def source_summary(alerts: Iterable[Mapping], model_version: str, min_score: float = 0.5,
                   alert_mag_max: float = 19.0) -> dict:
    """What the Fritz annotation shows: latest score, max score, counting alerts, model version; and
    `btsbot_score_precision: int8` when the latest or max score is not the fp32 model's (an alert below
    the int8 backend's fp32 floor keeps its int8 score, see `bot.scoring.scorer.Scorer`)."""
    rule = Policy("annotation", min_score=min_score, alert_mag_max=alert_mag_max, model_version=model_version)
    scored = sorted((a for a in alerts if rule.judges(a)), key=lambda a: (a["jd"], a["candid"]))
    if not scored:
        return {}
    counting = [a for a in scored if rule.counts(a)]
    top = max(scored, key=lambda a: float(a["score"]))
    out = {
        "btsbot_latest_score": round(float(scored[-1]["score"]), 6),
        "btsbot_max_score": round(float(top["score"]), 6),
        "btsbot_n_counting_alerts": len(counting),
        "btsbot_latest_candid": str(scored[-1]["candid"]),
        "btsbot_model_version": model_version,
    }
    if "int8" in (scored[-1].get("precision"), top.get("precision")):
        out["btsbot_score_precision"] = "int8"
    return out


def score_text(score: float, decimals: int = 3) -> str:
    """A score for people: `decimals` decimals, truncated, never rounded up (0.99969 -> "0.999")."""
    from decimal import ROUND_DOWN, Decimal

    return str(Decimal(repr(float(score))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN))
