"""What Kowalski's ZTF ingester writes into `ZTF_alerts_aux`, one document per objectId:
`{_id: objectId, cross_matches, prv_candidates[, fp_hists]}` (contract: docs/contracts.md, KW 3.1, KW 3.3).

Citations are `path:line` in skyportal/kowalski at 51d0078 (`ztf.py` = kowalski/alert_brokers/alert_broker_ztf.py,
`broker.py` = kowalski/alert_brokers/alert_broker.py):
- prv_candidates: null fields dropped (ztf.py:115-119); the first alert's list is inserted as is, later alerts
  `$addToSet: {$each: ...}` (ztf.py:186-194), so only identical entries merge;
- fp_hists: sorted by jd in alert_mongify (broker.py:615-622), values None/-99999 dropped (ztf.py:121-129), then
  `format_fp_hists` (ztf.py:608-638, with `flux_to_mag` ztf.py:579-606); stored only when the object's FIRST alert
  has `ndethist <= 1` or `jd - jdstarthist < 30` (ztf.py:155-171); a later alert merges its fp_hists only into an
  aux document that already has the field (ztf.py:196-215), by `update_fp_hists` (ztf.py:640-730);
- cross_matches: computed once, at the first alert (ztf.py:137-151), one list per catalog of
  `database.xmatch.ZTF` (broker.py:1022-1065; config.defaults.yaml:594-817). The stand-in has no catalogs to
  match against, so every list is empty -- what Kowalski stores for a position with no counterpart.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

# config.defaults.yaml:595-817 (database.xmatch.ZTF), in the file's order
XMATCH_CATALOGS = ("2MASS_PSC", "AllWISE", "Gaia_DR2", "Gaia_EDR3", "Gaia_DR2_WD", "PS1_STRM",
                   "galaxy_redshifts_20200522", "GALEX", "IGAPS_DR2", "LAMOST_DR5_v3", "PS1_DR1",
                   "CLU_20190625", "NED_BetaV3", "milliquas")
FP_FILL = (None, -99999, -99999.0)  # ztf.py:126
FP_MAX_AGE_DAYS = 30  # ztf.py:169


def cross_matches() -> dict[str, list]:
    """`alert_filter__xmatch` with no match in any catalog: `{catalog: []}` for each configured catalog."""
    return {catalog: [] for catalog in XMATCH_CATALOGS}


def clean_prv_candidates(prv_candidates) -> list[dict]:
    """ztf.py:115-119: drop the keys whose value is None."""
    return [{k: v for k, v in p.items() if v is not None} for p in prv_candidates or []]


def clean_fp_hists(fp_hists) -> list[dict]:
    """broker.py:615-622 (sort by jd) then ztf.py:121-129 (drop None and -99999 values)."""
    fps = sorted(fp_hists or [], key=lambda fp: fp["jd"])
    return [{k: v for k, v in fp.items() if v not in FP_FILL} for fp in fps]


def flux_to_mag(flux, fluxerr, zp) -> dict[str, float]:
    """ztf.py:579-606, to the operation: float64 arithmetic, {} when the SNR is NaN, NaN fields dropped
    (a negative flux keeps snr, magerr (negative) and the limits, and loses mag)."""
    values = np.array([flux, fluxerr, zp], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = values[0] / values[1]
        mag = -2.5 * np.log10(values[0]) + values[2]
        magerr = 1.0857 * (values[1] / values[0])
        limmag3sig = -2.5 * np.log10(3 * values[1]) + values[2]
        limmag5sig = -2.5 * np.log10(5 * values[1]) + values[2]
    if np.isnan(snr):
        return {}
    data = {"mag": mag, "magerr": magerr, "snr": snr, "limmag3sig": limmag3sig, "limmag5sig": limmag5sig}
    return {k: float(v) for k, v in data.items() if not np.isnan(v)}


def format_fp_hists(alert: Mapping, fp_hists: list[dict]) -> list[dict]:
    """ztf.py:608-638: sort by jd, drop an entry whose jd equals the previous one's, add the flux_to_mag fields
    and the alert's magpsf, ra and dec as alert_mag, alert_ra, alert_dec."""
    if not fp_hists:
        return []
    fps = sorted(fp_hists, key=lambda fp: fp["jd"])
    fps = [fp for i, fp in enumerate(fps) if i == 0 or fp["jd"] != fps[i - 1]["jd"]]
    cand = alert["candidate"]
    return [{**fp,
             **flux_to_mag(fp.get("forcediffimflux", np.nan), fp.get("forcediffimfluxunc", np.nan), fp["magzpsci"]),
             "alert_mag": cand["magpsf"], "alert_ra": cand["ra"], "alert_dec": cand["dec"]}
            for fp in fps]


def keeps_fp_hists(candidate: Mapping) -> bool:
    """ztf.py:155-171, asked at the object's first alert: a new object (`ndethist <= 1`) or one first detected
    less than 30 days ago. (A null jdstarthist with ndethist > 1 makes Kowalski's `jd - None` raise, and that
    alert then gets no aux document at all; the stand-in reads it as 0, i.e. no fp_hists.)"""
    if candidate["ndethist"] <= 1:
        return True
    start = candidate.get("jdstarthist")
    return candidate["jd"] - (start if start is not None else 0) < FP_MAX_AGE_DAYS


def merge_fp_hists(existing: list[dict], new: list[dict]) -> list[dict]:
    """`update_fp_hists` (ztf.py:640-730): nothing to add leaves it as it is (ztf.py:646-647); else the stored and
    the new entries are concatenated, a missing alert_mag set to -99999.0 (ztf.py:697-712), sorted by (jd,
    alert_mag) and the first of each jd kept -- the brightest alert's (ztf.py:714-726) --, sorted by jd
    (ztf.py:729). Ties in (jd, alert_mag) keep the stored entry (Mongo leaves that order unspecified)."""
    if not new:
        return existing
    merged = [fp if "alert_mag" in fp else {**fp, "alert_mag": -99999.0} for fp in [*existing, *new]]
    merged.sort(key=lambda fp: (fp["jd"], fp["alert_mag"]))  # stable: stored entries first on ties
    return [fp for i, fp in enumerate(merged) if i == 0 or fp["jd"] != merged[i - 1]["jd"]]
