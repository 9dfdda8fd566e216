"""The broker's own BTSbot score against ours (pure; no I/O): where each broker keeps it, how far apart
the two are, and which of our inputs the broker is known to compute differently.

Both brokers run BTSbot at ingestion and store the score with the alert (docs/contracts.md, "Broker
scores"): Kowalski in `classifications.bts` with its model version in `classifications.bts_version`;
BOOM in `classifications.btsbot`, without a version (v1.0.1 and v2.0.0 write the same key). The
broker's score is evidence about the broker, never an input to a decision: our model decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bot.core.triplets import SENTINEL_ABS, SIZE, CutoutError, decode_stamp

# source -> (score key, version key or None) inside the alert's `classifications`
SCORE_KEYS: dict[str, tuple[str, str | None]] = {"kowalski": ("bts", "bts_version"), "boom": ("btsbot", None)}

# source -> what that broker feeds BTSbot differently from training, always (the alert-specific ones are
# found by `differing_inputs`)
KNOWN: dict[str, tuple[str, ...]] = {
    "kowalski": ("new_drb: the alert's own drb whatever its drbversion, not a braai d6_m9 re-run",
                 "triplet: float32 norm, so a template with float32-minimum fill becomes all zeros (ours masks the fill)"),
    "boom": ("age: first_jd - last_jd of its lightcurve (<= 0; ours jd - first detection, jdstarthist included)",
             "lightcurve: forced photometry with |SNR| >= 3 in peak, faintest, age and days_*_peak (ours detections only)",
             "new_drb: the alert's own drb, not a braai d6_m9 re-run",
             "triplet: stamps under 63x63 centred before normalising; float32 norm zeroes a filled template"),
}


def broker_score(alert: Mapping, source: str) -> tuple[float | None, str | None]:
    """(score, model version) the broker stored with the alert; (None, None) when it stored none (a model
    that failed, an alert not enriched yet) or the value is not a finite number in [0, 1]."""
    keys = SCORE_KEYS.get(source)
    classes = alert.get("classifications") if isinstance(alert, Mapping) else None
    if keys is None or not isinstance(classes, Mapping):
        return None, None
    value = classes.get(keys[0])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        return None, None
    version = classes.get(keys[1]) if keys[1] else None
    return float(value), (str(version) if version is not None else None)


@dataclass(frozen=True)
class Drift:
    """One alert whose broker score differs from ours by more than the tolerance."""

    candid: int
    objectId: str
    ours: float
    broker: float
    source: str
    broker_model: str | None = None
    inputs: tuple[str, ...] = field(default_factory=tuple)  # what the broker computes differently, this alert

    @property
    def diff(self) -> float:
        return abs(self.ours - self.broker)

    def line(self) -> str:
        model = f" {self.broker_model}" if self.broker_model else ""
        why = "; ".join(self.inputs) if self.inputs else "no known input difference applies"
        return (f"{self.objectId} candid {self.candid}: ours {self.ours:.3f}, {self.source}{model} {self.broker:.3f} "
                f"(|diff| {self.diff:.3f}): {why}")


def _template_filled(alert: Mapping) -> bool:
    stamp = alert.get("cutoutTemplate")
    data = stamp.get("stampData") if isinstance(stamp, Mapping) else None
    if not data:
        return False
    try:
        return bool((np.abs(np.nan_to_num(decode_stamp(data))) >= SENTINEL_ABS).any())
    except CutoutError:
        return False


def _small_stamps(alert: Mapping) -> list[str]:
    out = []
    for key in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        stamp = alert.get(key)
        data = stamp.get("stampData") if isinstance(stamp, Mapping) else None
        try:
            shape = decode_stamp(data).shape if data else None
        except CutoutError:
            shape = None
        if shape and shape != (SIZE, SIZE):
            out.append(f"{key} {shape[0]}x{shape[1]}")
    return out


def differing_inputs(source: str, alert: Mapping, features: Mapping[str, float]) -> tuple[str, ...]:
    """Which of this alert's inputs the broker is known to compute differently from ours (decodes stamps:
    call it for the alerts over the tolerance only)."""
    cand = alert.get("candidate") or {}
    out = []
    drb, ours_drb = cand.get("drb"), features.get("new_drb")
    if drb is not None and ours_drb is not None and abs(float(drb) - ours_drb) > 1e-3:
        out.append(f"new_drb: broker {float(drb):.3f} (alert drb, {cand.get('drbversion') or 'no version'}), "
                   f"ours {ours_drb:.3f} (braai d6_m9)")
    if _template_filled(alert):
        out.append("template: float32-minimum fill; the broker's float32 norm zeroes it, ours masks the fill")
    if source == "boom":
        if features.get("age", 0.0) > 0:
            out.append(f"age: broker about {-features['age']:.2f} (first_jd - last_jd), ours {features['age']:.2f}")
        small = _small_stamps(alert)
        if small:
            out.append("stamps centred, not padded: " + ", ".join(small))
        out.append("lightcurve: the broker adds forced photometry (|SNR| >= 3) to peak, faintest and the ages")
    return tuple(out)


def over_tolerance(rows: list[Mapping], tolerance: float) -> list[int]:
    """Positions of the journal rows (with `score` and `broker_score`) whose |diff| exceeds `tolerance`."""
    return [i for i, r in enumerate(rows) if r.get("score") is not None and r.get("broker_score") is not None
            and abs(r["score"] - r["broker_score"]) > tolerance]


def largest(rows: list[Mapping], n: int = 10) -> list[Drift]:
    """The `n` journal rows with the largest |ours - broker's|, largest first, as Drifts (their inputs: what
    the cycle found when it journaled them, `extra.broker_differs`)."""
    both = [r for r in rows if r.get("score") is not None and r.get("broker_score") is not None]
    both.sort(key=lambda r: (-abs(r["score"] - r["broker_score"]), r["candid"]))
    out = []
    for r in both[:n]:
        extra = r.get("extra") if isinstance(r.get("extra"), Mapping) else {}
        out.append(Drift(int(r["candid"]), r["objectId"], float(r["score"]), float(r["broker_score"]),
                         r.get("source") or "broker", r.get("broker_model"), tuple(extra.get("broker_differs") or ())))
    return out


@dataclass(frozen=True)
class DriftSummary:
    """The drift monitor over a set of journal rows: how many carry a broker score, how many differ."""

    n_compared: int
    n_over: int
    tolerance: float
    max_diff: float | None
    largest: tuple[Drift, ...]

    @classmethod
    def of(cls, rows: list[Mapping], tolerance: float, n: int = 10) -> "DriftSummary":
        diffs = [abs(r["score"] - r["broker_score"]) for r in rows
                 if r.get("score") is not None and r.get("broker_score") is not None]
        return cls(len(diffs), sum(d > tolerance for d in diffs), tolerance, max(diffs, default=None),
                   tuple(largest(rows, n)))

    def line(self) -> str:
        if not self.n_compared:
            return "no alert carried a broker score"
        return (f"{self.n_over} of {self.n_compared} alerts with a broker score differ from ours by more than "
                f"{self.tolerance:g} (largest |diff| {self.max_diff:.3f})")
