"""A daemon cycle with `onnx-int8`: every alert a policy could count is journaled (and shown on Fritz) with its fp32 score.

Example night on the local Kowalski (real penquins client), dry-run; the reference is the same cycle
with the fp32 ONNX model."""

import json
import sqlite3

import pytest
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.config import load_config
from bot.cycle import run_cycle
from bot.scoring.backends import load_backends
from bot.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def int8_scorer(model_cache):
    int8, braai, fp32 = load_backends("onnx-int8", model_cache)
    cfg = load_config()
    return Scorer(int8, braai, fp32_model=fp32, guard=cfg.models.int8_guard,
                  thresholds=[p.min_score for p in cfg.policies])


@pytest.fixture
def make_runtime(example_runtimes):
    return example_runtimes


def cycle(rt, until=EXAMPLE_UNTIL, **kw):
    return run_cycle(rt, since_jd=EXAMPLE_SINCE, until_jd=until, **kw)


def journal(rt) -> dict:
    db = sqlite3.connect(rt.config.journal_path)
    try:
        alerts = db.execute("SELECT objectId, candid, score, precision, status FROM alerts ORDER BY candid")
        decisions = db.execute("SELECT policy, objectId, candid, evidence FROM decisions ORDER BY policy, objectId")
        annotations = db.execute("SELECT d.objectId, a.key, a.request FROM actions a JOIN decisions d "
                                 "ON d.id = a.decision_id WHERE a.action = 'annotation' ORDER BY a.id")
        return {"alerts": {r[1]: r for r in alerts.fetchall()},
                "decisions": [(*r[:3], json.loads(r[3])) for r in decisions.fetchall()],
                "annotations": [(r[0], r[1], json.loads(r[2])["data"]) for r in annotations.fetchall()]}
    finally:
        db.close()


def assert_fp32_where_it_counts(got: dict, ref: dict, floor: float) -> None:
    """`got` (int8 run) makes the decisions of the fp32 run `ref`, with its evidence (1e-6); every alert at or
    above the fp32 floor is journaled with the fp32 score; the others keep an int8 score below the floor, and
    an annotation whose latest score is one of those says so."""
    assert [d[:3] for d in got["decisions"]] == [d[:3] for d in ref["decisions"]] != []
    for g, r in zip(got["decisions"], ref["decisions"]):
        assert g[3]["score"] == pytest.approx(r[3]["score"], abs=1e-6)
        assert g[3]["max_score"] == pytest.approx(r[3]["max_score"], abs=1e-6)
    assert [a[:2] for a in got["annotations"]] == [a[:2] for a in ref["annotations"]] != []
    for (_, _, g), (_, _, r) in zip(got["annotations"], ref["annotations"]):
        assert g["btsbot_max_score"] == pytest.approx(r["btsbot_max_score"], abs=1e-6)
        assert g["btsbot_n_counting_alerts"] == r["btsbot_n_counting_alerts"]
        latest = got["alerts"][int(g["btsbot_latest_candid"])]
        if latest[3] == "fp32":
            assert g["btsbot_latest_score"] == pytest.approx(r["btsbot_latest_score"], abs=1e-6)
            assert "btsbot_score_precision" not in g
        else:
            assert g["btsbot_score_precision"] == "int8" and g["btsbot_latest_score"] < floor
    assert set(got["alerts"]) == set(ref["alerts"])
    for candid, row in got["alerts"].items():
        if row[3] == "fp32":
            assert row[2] == pytest.approx(ref["alerts"][candid][2], abs=1e-6)
        else:
            assert row[3] == "int8" and row[2] < floor


def test_int8_cycle_journals_fp32_scores_where_a_policy_could_count_them(make_runtime, onnx_scorer, int8_scorer,
                                                                          example_packets, monkeypatch):
    fp32 = make_runtime("fp32", onnx_scorer)
    fp32_report = cycle(fp32)
    ref = journal(fp32)
    sn = [p for p in example_packets if p["objectId"] == SN]
    alone = Scorer(int8_scorer.model, int8_scorer.braai).score(sn)  # the int8 model alone: != fp32 beyond 1e-6
    assert {r.precision for r in alone} == {"int8"}
    assert max(abs(r.score - ref["alerts"][r.candid][2]) for r in alone if r.candid in ref["alerts"]) > 1e-5

    whole = make_runtime("int8", int8_scorer)
    report = cycle(whole)
    got = journal(whole)
    assert_fp32_where_it_counts(got, ref, int8_scorer.fp32_floor)
    assert {row[3] for row in got["alerts"].values()} == {"int8", "fp32"}  # both kinds occur on this night
    assert {row[3] for c, row in got["alerts"].items() if row[0] == SN and ref["alerts"][c][2] >= 0.5} == {"fp32"}
    assert report.kowalski_requests == fp32_report.kowalski_requests  # nothing is fetched again

    # one alert per chunk: each alert's precision is decided in its own pass, so the journal ends as with one
    # chunk, and nothing is fetched again from Kowalski
    chunked = make_runtime("int8-chunked", int8_scorer, chunk=1)
    monkeypatch.setattr(chunked.poller, "fetch", lambda keys: pytest.fail("an alert was fetched again"))
    report = cycle(chunked)
    assert report.n_chunks == report.n_new == len(got["alerts"])
    assert journal(chunked) == got
