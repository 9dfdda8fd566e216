"""The broker's own BTSbot score, computed the way each broker computes it, for the local stand-ins.

Both brokers run BTSbot at ingestion and store its score with the alert. Neither feeds the model exactly
what it was trained on (`bot/core/triplets.py` and `bot/core/features.py` are what training defined), so
the drift monitor (`bot/core/drift.py`) has real differences to find only if the stand-ins reproduce the
brokers' ways, not ours:

Kowalski (`kowalski/alert_brokers/alert_broker.py` `alert_filter__ml`, `utils.py` `ZTFAlert.make_triplet`),
stored as `classifications.bts` with `classifications.bts_version`:
  - triplet: `np.nan_to_num` of the float32 stamp, divided by its float32 `np.linalg.norm` -- a template
    carrying the float32-minimum fill value overflows that norm to inf and becomes all zeros --, padded
    bottom/right with 1e-9;
  - features: BTSbot's formulas over the history, but the alert's own `drb` in the `new_drb` slot whatever
    its `drbversion` (no braai re-run); an alert without a `drb` gets no score.

BOOM (`src/enrichment/models/btsbot.rs`, `src/utils/fits.rs`, `src/utils/lightcurves.rs`), stored as
`classifications.btsbot` without a version:
  - triplet: NaN -> 0, +-inf clamped to +-float32 max, a stamp smaller than 63x63 centred in a zero frame
    (offset ceil((63 - n) / 2)) before normalising by its float32 L2 norm (overflow -> zeros, as above);
  - features: from the lightcurve = the aux detections with jd <= the alert's + the forced photometry with
    jd <= the alert's and |SNR| >= 3 (magnitude from the flux), sorted, de-duplicated on (jd, band);
    `age = first_jd - last_jd` (<= 0, the negative of BTSbot's), `days_since_peak = last_jd - peak_jd`,
    `days_to_peak = peak_jd - first_jd`, peak/faintest mag over that lightcurve (`jdstarthist` unused),
    `drb = candidate.drb`; an alert with an empty lightcurve or a missing feature gets no classifications.

`predict` is any loaded BTSbot backend's `predict(triplets, features)` (`bot.scoring.backends`).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from bot.core.features import FEATURES, FeatureError, RAW, _number, packet_history, derived_features
from bot.core.triplets import CUTOUT_KEYS, SIZE, CutoutError, decode_stamp

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
KOWALSKI_MODEL_VERSION = "v1.0.1"  # Kowalski's config.defaults.yaml: ml.ZTF.bts.version
_F32_MAX = np.finfo(np.float32).max


def _stamp(alert: Mapping, key: str) -> np.ndarray:
    cutout = alert.get(key)
    data = cutout.get("stampData") if isinstance(cutout, Mapping) else None
    if not data:
        raise CutoutError(f"{key} is missing")
    return decode_stamp(data).astype(np.float32)  # the stamps are float32: this is exact


def _f32_normalised(img: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return img / np.linalg.norm(img)  # float32 in, float32 norm: overflows to inf on the fill value


def kowalski_triplet(alert: Mapping) -> np.ndarray:
    out = np.full((SIZE, SIZE, 3), 1e-9, dtype=np.float32)
    for ch, key in enumerate(CUTOUT_KEYS):
        img = _f32_normalised(np.nan_to_num(_stamp(alert, key)))
        out[: img.shape[0], : img.shape[1], ch] = img
    return out


def boom_triplet(alert: Mapping) -> np.ndarray:
    out = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    for ch, key in enumerate(CUTOUT_KEYS):
        img = _stamp(alert, key)
        img = np.clip(np.where(np.isnan(img), np.float32(0), img), -_F32_MAX, _F32_MAX)
        frame = np.zeros((SIZE, SIZE), dtype=np.float32)
        ny, nx = img.shape
        y0, x0 = math.ceil((SIZE - ny) / 2), math.ceil((SIZE - nx) / 2)
        frame[y0 : y0 + ny, x0 : x0 + nx] = img
        out[:, :, ch] = _f32_normalised(frame)
    return out


def kowalski_features(alert: Mapping) -> np.ndarray:
    cand = alert["candidate"]
    values = {name: _number(cand.get(name), name) for name in RAW}
    values.update(derived_features(cand, packet_history(dict(alert))))
    values["new_drb"] = _number(cand.get("drb"), "drb")  # the alert's drb, whatever its drbversion
    return np.array([values[f] for f in FEATURES], dtype=np.float32)


def _fp_point(fp: Mapping) -> tuple[float, float, str] | None:
    """(jd, mag, band) of a forced-photometry point BOOM keeps in the lightcurve (|SNR| >= 3), else None."""
    flux, unc, zp = fp.get("forcediffimflux"), fp.get("forcediffimfluxunc"), fp.get("magzpsci")
    if None in (flux, unc, zp, fp.get("jd")) or flux == -99999 or not unc or unc <= 0:
        return None
    if not (math.isfinite(flux) and math.isfinite(unc)) or abs(flux) / unc <= 3.0:
        return None
    return float(fp["jd"]), float(zp) - 2.5 * math.log10(abs(flux)), str(fp.get("band", fp.get("fid")))


def boom_lightcurve(candidate: Mapping, aux: Mapping) -> list[tuple[float, float, str]]:
    """BOOM's enrichment lightcurve of one alert: (jd, mag, band), sorted, de-duplicated on (jd, band)."""
    jd = float(candidate["jd"])
    points = [(float(p["jd"]), float(p["magpsf"]), str(p.get("band", p.get("fid"))))
              for p in aux.get("prv_candidates") or [] if p.get("magpsf") is not None and p["jd"] <= jd]
    points += [p for p in map(_fp_point, aux.get("fp_hists") or []) if p is not None and p[0] <= jd]
    points.sort(key=lambda p: p[0])  # a stable sort, as Rust's sort_by
    out: list[tuple[float, float, str]] = []
    for p in points:
        if not out or (out[-1][0], out[-1][2]) != (p[0], p[2]):
            out.append(p)
    return out


def boom_features(candidate: Mapping, aux: Mapping) -> np.ndarray:
    lc = boom_lightcurve(candidate, aux)
    if not lc:
        raise FeatureError("empty lightcurve")
    first_jd, last_jd = lc[0][0], lc[-1][0]
    peak = lc[0]
    for p in lc[1:]:
        if p[1] < peak[1]:
            peak = p
    values = {name: _number(candidate.get(name), name) for name in RAW}
    values.update({
        "age": first_jd - last_jd, "days_since_peak": last_jd - peak[0], "days_to_peak": peak[0] - first_jd,
        "peakmag_so_far": peak[1], "maxmag_so_far": max(p[1] for p in lc),
        "nnotdet": values["ncovhist"] - values["ndethist"], "new_drb": _number(candidate.get("drb"), "drb"),
    })  # fmt: skip
    return np.array([values[f] for f in FEATURES], dtype=np.float32)


def _scores(inputs: Iterable[tuple[int, Callable[[], tuple[np.ndarray, np.ndarray]]]], predict: Predict
            ) -> dict[int, float]:
    """candid -> the model's score, for the alerts whose inputs the broker could build (one batch)."""
    keys, triplets, features = [], [], []
    for candid, build in inputs:
        try:
            t, f = build()
        except (CutoutError, FeatureError, KeyError, TypeError, ValueError):
            continue  # the broker stores no score for it
        keys.append(candid)
        triplets.append(t)
        features.append(f)
    if not keys:
        return {}
    scores = np.asarray(predict(np.stack(triplets), np.stack(features).astype(np.float32))).reshape(-1)
    return {k: float(s) for k, s in zip(keys, scores)}


def kowalski_classifications(packets: Sequence[Mapping], predict: Predict) -> dict[int, dict]:
    """candid -> Kowalski's `classifications` for the packets it could score."""
    scores = _scores(((int(p["candid"]), lambda p=p: (kowalski_triplet(p), kowalski_features(p))) for p in packets),
                     predict)
    return {c: {"bts": s, "bts_version": KOWALSKI_MODEL_VERSION} for c, s in scores.items()}


def boom_classifications(items: Sequence[tuple[Mapping, Mapping]], predict: Predict) -> dict[int, dict]:
    """candid -> BOOM's `classifications` for (packet, its object's aux document at ingestion) pairs."""
    scores = _scores(((int(p["candid"]), lambda p=p, a=a: (boom_triplet(p), boom_features(p["candidate"], a)))
                      for p, a in items), predict)
    return {c: {"btsbot": s} for c, s in scores.items()}
