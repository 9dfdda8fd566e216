"""Policies (pure): what counts, when a policy holds, and its decision time."""

import pytest

from bot.core.policies import Policy, evaluate, source_summary


MV = "v1.0.1"  # the scores' model version in these alerts (test data)


def alert(i, score, mag, peak=None, age=None, mv=MV, oid="ZTF00aaaaaaa"):
    return {"objectId": oid, "candid": 1000 + i, "jd": 2460000.0 + i, "score": score, "magpsf": mag,
            "peakmag_so_far": mag if peak is None else peak, "age": float(i) if age is None else age,
            "model_version": mv}


BTS_P1 = Policy("bts_p1", min_score=0.5, min_alerts=2, alert_mag_max=19.0, model_version=MV)
BTS_P2 = Policy("bts_p2", min_score=0.5, min_alerts=2, alert_mag_max=19.0, peakmag_max=18.5, model_version=MV)


def test_decision_time_is_the_first_alert_at_which_it_holds():
    alerts = [alert(0, 0.9, 18.3), alert(1, 0.2, 18.2), alert(2, 0.8, 18.1), alert(3, 0.95, 18.0)]
    d = evaluate(BTS_P1, reversed(alerts))  # any input order
    assert d.candid == 1002 and d.n_counting == 2 and d.counting_candids == (1000, 1002)
    assert d.max_score == 0.9 and d.score == 0.8


@pytest.mark.parametrize("score, mag, counts", [(0.5, 18.0, False), (0.51, 18.0, True), (0.9, 19.0, False),
                                                (0.9, 18.99, True), (None, 18.0, False)])
def test_what_counts(score, mag, counts):
    assert BTS_P1.counts(alert(0, score, mag)) is counts


def test_faint_alerts_do_not_count_but_peak_gates_p2():
    alerts = [alert(0, 0.9, 19.2), alert(1, 0.9, 18.9), alert(2, 0.9, 18.7), alert(3, 0.9, 18.4)]
    assert evaluate(BTS_P1, alerts).candid == 1002  # 19.2 does not count
    assert evaluate(BTS_P2, alerts).candid == 1003  # only once the peak so far is <= 18.5
    assert evaluate(BTS_P2, alerts[:3]) is None


def test_age_window_and_model_version():
    aged = Policy("young", min_alerts=1, age_max_days=3.0, model_version=MV)
    assert evaluate(aged, [alert(5, 0.9, 18.0)]) is None
    assert evaluate(aged, [alert(2, 0.9, 18.0)]).candid == 1002
    old = Policy("old", min_alerts=1, age_min_days=10.0, model_version=MV)
    assert evaluate(old, [alert(2, 0.9, 18.0), alert(12, 0.9, 18.0)]).candid == 1012
    v2 = Policy("prod_p1", min_score=0.85, min_alerts=1, model_version="v2")
    assert evaluate(v2, [alert(0, 0.99, 18.0, mv="v1.0.1")]) is None  # other model's scores never count
    assert evaluate(v2, [alert(0, 0.99, 18.0, mv="v2")]).model_version == "v2"


def test_the_example_sn_and_cv(example):
    rows, _ = example
    alerts = [{"objectId": r["objectId"], "candid": i, "jd": float(r["jd"]), "score": float(r["expected_scores"]),
               "magpsf": float(r["magpsf"]), "peakmag_so_far": float(r["peakmag_so_far"]), "age": float(r["age"])}
              for i, r in enumerate(rows)]
    sn = [a for a in alerts if a["objectId"] == "ZTF23abhvlji"]
    cv = [a for a in alerts if a["objectId"] == "ZTF23abdsfms"]
    for policy in (BTS_P1, BTS_P2):
        assert evaluate(policy, sn).jd == pytest.approx(2460222.943)  # its second alert
        assert evaluate(policy, cv) is None
    prod_p1 = Policy("prod_p1", min_score=0.85, min_alerts=1, model_version=MV)
    assert evaluate(prod_p1, sn).jd == pytest.approx(2460220.941)  # the alternate fires at the first


def test_source_summary_for_the_annotation():
    alerts = [alert(0, 0.9, 18.3), alert(1, 0.2, 18.2), alert(2, 0.8, 19.5), alert(3, None, 18.0)]
    s = source_summary(alerts, "v1.0.1")
    assert s == {"btsbot_latest_score": 0.8, "btsbot_max_score": 0.9, "btsbot_n_counting_alerts": 1,
                 "btsbot_latest_candid": "1002", "btsbot_model_version": "v1.0.1"}
    assert source_summary([alert(0, None, 18.0)], "v1.0.1") == {}


def test_source_summary_says_when_a_shown_score_is_int8():
    fp32 = [{**alert(0, 0.9, 18.3), "precision": "fp32"}, {**alert(1, 0.8, 18.2), "precision": "fp32"}]
    assert "btsbot_score_precision" not in source_summary(fp32, MV)
    earlier_int8 = [{**alert(-1, 0.7, 18.4), "precision": "int8"}] + fp32  # neither the latest nor the max
    assert "btsbot_score_precision" not in source_summary(earlier_int8, MV)
    max_int8 = [{**alert(-1, 0.95, 18.4), "precision": "int8"}] + fp32
    assert source_summary(max_int8, MV)["btsbot_score_precision"] == "int8"
    latest_int8 = fp32 + [{**alert(2, 0.6, 18.1), "precision": "int8"}]
    assert source_summary(latest_int8, MV)["btsbot_score_precision"] == "int8"
