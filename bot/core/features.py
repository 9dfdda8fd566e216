"""The 25 BTSbot metadata features, in the order the model was trained on.

Raw features come from the alert's `candidate`. Derived ones use the object's detection history up to
and including the alert -- never later detections, so that replaying a night never sees the future.
A raw feature that is missing makes the alert unscorable (no imputation).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

FEATURES: tuple[str, ...] = (
    "sgscore1", "distpsnr1", "sgscore2", "distpsnr2", "fwhm", "magpsf",
    "sigmapsf", "chipsf", "ra", "dec", "diffmaglim", "ndethist", "nmtchps",
    "age", "days_since_peak", "days_to_peak", "peakmag_so_far", "new_drb",
    "ncovhist", "nnotdet", "chinr", "sharpnr", "scorr", "sky", "maxmag_so_far",
)  # fmt: skip
DERIVED: frozenset[str] = frozenset(
    {"age", "days_since_peak", "days_to_peak", "peakmag_so_far", "maxmag_so_far", "nnotdet", "new_drb"}
)
RAW: tuple[str, ...] = tuple(f for f in FEATURES if f not in DERIVED)
# candidate fields the derived features read (besides magpsf/jd of the history)
NEEDED: tuple[str, ...] = RAW + ("jd", "jdstarthist")


class FeatureError(ValueError):
    """An alert whose features cannot be computed; str() is the reason."""


def _number(value, name: str) -> float:
    if value is None:
        raise FeatureError(f"candidate.{name} is null")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise FeatureError(f"candidate.{name} is not a number ({value!r})") from None
    if not math.isfinite(x):
        raise FeatureError(f"candidate.{name} is not finite ({value!r})")
    return x


def packet_history(alert: dict) -> list[dict]:
    """The history an alert packet carries: its prv_candidates (detections and non-detections) + itself."""
    prv = alert.get("prv_candidates") or []
    return [p for p in prv if isinstance(p, dict)] + [alert.get("candidate") or {}]


def history_key(entry: Mapping) -> tuple:
    """The identity of a history entry, for deduplication: detections by candid (two detections can
    share an exposure and a filter: ZTF17aadcuwj), non-detections, which have no candid, by (jd, fid)."""
    candid = entry.get("candid")
    return ("candid", int(candid)) if candid is not None else ("jd-fid", entry.get("jd"), entry.get("fid"))


def history_until(detections: Iterable[dict], jd: float) -> list[dict]:
    """Detections (entries with a magpsf) with jd <= `jd`, deduplicated, in jd order."""
    seen = set()
    out = []
    for det in detections:
        if det.get("magpsf") is None or det.get("jd") is None or det["jd"] > jd:
            continue
        k = history_key(det)
        if k in seen:
            continue
        seen.add(k)
        out.append(det)
    out.sort(key=lambda d: d["jd"])
    return out


def derived_features(candidate: dict, detections: Iterable[dict]) -> dict[str, float]:
    """age, days_since_peak, days_to_peak, peakmag_so_far, maxmag_so_far, nnotdet for one alert.

    `detections` is any history of the object (it may contain later detections and non-detections:
    they are cut here); the alert's own candidate is always part of its history.
    """
    jd = _number(candidate.get("jd"), "jd")
    hist = history_until([candidate, *detections], jd)  # first: its own values win over a republished copy
    mags = [float(d["magpsf"]) for d in hist]
    peak = min(mags)
    jd_peak = next(d["jd"] for d in hist if float(d["magpsf"]) == peak)  # earliest jd at the peak
    first_jd = min(_number(candidate.get("jdstarthist"), "jdstarthist"), hist[0]["jd"])
    return {
        "age": jd - first_jd,
        "days_since_peak": jd - jd_peak,
        "days_to_peak": jd_peak - first_jd,
        "peakmag_so_far": peak,
        "maxmag_so_far": max(mags),
        "nnotdet": _number(candidate.get("ncovhist"), "ncovhist") - _number(candidate.get("ndethist"), "ndethist"),
    }


def feature_row(candidate: dict, detections: Iterable[dict], new_drb: float) -> np.ndarray:
    """One alert's 25 features (float64), in model order; raises FeatureError."""
    if not isinstance(candidate, dict):
        raise FeatureError("alert has no candidate")
    values = {name: _number(candidate.get(name), name) for name in RAW}
    values.update(derived_features(candidate, detections))
    values["new_drb"] = _number(new_drb, "new_drb") if new_drb is not None else None
    if values["new_drb"] is None:
        raise FeatureError("new_drb is missing")
    return np.array([values[f] for f in FEATURES], dtype=np.float64)


def feature_matrix(
    candidates: Sequence[dict], histories: Sequence[Iterable[dict]], drbs: Sequence[float | None]
) -> tuple[np.ndarray, list[str | None]]:
    """Features for a batch: (N, 25) float64 (the backends feed float32) and per alert None or the reason it cannot be scored."""
    out = np.zeros((len(candidates), len(FEATURES)), dtype=np.float64)
    errors: list[str | None] = [None] * len(candidates)
    for i, (cand, hist, drb) in enumerate(zip(candidates, histories, drbs)):
        try:
            out[i] = feature_row(cand, hist, drb)
        except FeatureError as exc:
            errors[i] = str(exc)
    return out, errors


def alert_drb(candidate: dict, required_version: str = "d6_m9") -> float | None:
    """The alert's own drb when it was computed by the braai version the model was trained on, else None."""
    if candidate.get("drbversion") == required_version and candidate.get("drb") is not None:
        return float(candidate["drb"])
    return None
