"""Feature engineering, checked against the example CSV's own columns and the no-future rule."""

import math

import numpy as np
import pytest

from bot.core.features import (
    FEATURES,
    FeatureError,
    alert_drb,
    derived_features,
    feature_row,
    history_until,
    packet_history,
)  # fmt: skip

DERIVED_CHECKED = ("age", "days_since_peak", "days_to_peak", "peakmag_so_far", "maxmag_so_far", "nnotdet")


def _cand(row):
    return {k: (float(v) if k not in ("objectId", "isdiffpos") else v) for k, v in row.items()} | {"candid": None}


def test_derived_features_match_example_csv(example):
    """Recompute the derived features of every example alert from the CSV's raw columns and earlier rows.

    The CSV rounds jd to 1e-3 d while its derived columns were computed from full-precision jds, so the
    jd-based features agree to 1e-3 d; magnitudes and counts agree exactly.
    """
    rows, _ = example
    cands = [_cand(r) for r in rows]
    for row, cand in zip(rows, cands):
        earlier = [c for c in cands if c["objectId"] == cand["objectId"] and c["jd"] < cand["jd"]]
        got = derived_features(cand, earlier)
        for name in DERIVED_CHECKED:
            tol = 1e-3 if name in ("age", "days_since_peak", "days_to_peak") else 0.0
            assert abs(got[name] - float(row[name])) <= tol, (row["objectId"], row["jd"], name)


def test_alert_never_sees_later_detections(example):
    rows, _ = example
    cands = [_cand(r) for r in rows if r["objectId"] == "ZTF23abhvlji"]
    second = cands[1]
    only_past = derived_features(second, cands[:1])
    with_future = derived_features(second, cands)  # a Kowalski history holds the whole light curve
    assert only_past == with_future
    assert with_future["peakmag_so_far"] == pytest.approx(18.04724884)  # not the later 17.91 peak


def test_history_dedupes_and_skips_nondetections():
    dets = [
        {"jd": 1.0, "fid": 1, "magpsf": 18.0, "candid": 11},
        {"jd": 1.0, "fid": 1, "magpsf": 18.0, "candid": 11},  # the same alert from two sources
        {"jd": 2.0, "fid": 2, "magpsf": None, "candid": None, "diffmaglim": 20.1},  # non-detection
        {"jd": 3.0, "fid": 1, "magpsf": 17.0, "candid": None},
        {"jd": 3.0, "fid": 1, "magpsf": 17.0, "candid": None},
        {"jd": 4.0, "fid": 1, "magpsf": 16.0, "candid": 14},  # later than the cut
    ]
    assert [d["jd"] for d in history_until(dets, 3.0)] == [1.0, 3.0]


def test_peak_ties_take_the_earliest():
    cand = {"jd": 5.0, "magpsf": 18.0, "jdstarthist": 0.5, "ncovhist": 10, "ndethist": 3, "candid": 3}
    hist = [{"jd": 1.0, "magpsf": 18.0, "candid": 1}, {"jd": 3.0, "magpsf": 18.5, "candid": 2}]
    got = derived_features(cand, hist)
    assert got["days_since_peak"] == 4.0 and got["days_to_peak"] == 0.5 and got["age"] == 4.5
    assert got["nnotdet"] == 7


def test_feature_row_order_and_nulls(real_alerts):
    alert = real_alerts[0]
    row = feature_row(alert["candidate"], packet_history(alert), 0.9)
    assert row.shape == (25,) and FEATURES[17] == "new_drb" and row[17] == 0.9
    assert row[FEATURES.index("magpsf")] == pytest.approx(alert["candidate"]["magpsf"])
    assert all(math.isfinite(x) for x in row)
    for name in ("sgscore1", "scorr", "jdstarthist"):
        bad = dict(alert["candidate"], **{name: None})
        with pytest.raises(FeatureError, match=f"candidate.{name} is null"):
            feature_row(bad, packet_history(alert), 0.9)


def test_alert_drb_only_for_d6_m9(real_alerts):
    cand = real_alerts[0]["candidate"]
    assert cand["drbversion"] != "d6_m9" and alert_drb(cand) is None  # real 2020/2023 packets carry d6_m7
    assert alert_drb(dict(cand, drbversion="d6_m9", drb=0.75)) == 0.75
    assert alert_drb(dict(cand, drbversion="d6_m9", drb=None, rb=0.9)) is None  # rb is never used


def test_packet_history_is_prv_plus_self(real_alerts):
    alert = max(real_alerts, key=lambda a: len(a["prv_candidates"] or []))
    hist = packet_history(alert)
    assert hist[-1] is alert["candidate"] and len(hist) == len(alert["prv_candidates"]) + 1
    dets = history_until(hist, alert["candidate"]["jd"])
    assert 1 <= len(dets) < len(hist)  # non-detections dropped
    assert np.all(np.diff([d["jd"] for d in dets]) >= 0)
