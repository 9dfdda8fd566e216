"""A daemon cycle with `onnx-int8`: the sources acted on are shown and journaled with fp32 scores.

Example night on the local Kowalski (real penquins client), dry-run; the reference is the same cycle
with the fp32 ONNX model."""

import json
import logging
import sqlite3

import pytest
from conftest import CV, EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.config import load_config
from bot.cycle import run_cycle
from bot.kowalski.client import KowalskiError
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


def assert_fp32_shown(got: dict, ref: dict) -> None:
    """The decisions' evidence and the annotations of `got` are those of the fp32 run `ref` (1e-6)."""
    assert [d[:3] for d in got["decisions"]] == [d[:3] for d in ref["decisions"]] != []
    for g, r in zip(got["decisions"], ref["decisions"]):
        assert g[3]["score"] == pytest.approx(r[3]["score"], abs=1e-6)
        assert g[3]["max_score"] == pytest.approx(r[3]["max_score"], abs=1e-6)
    assert [a[:2] for a in got["annotations"]] == [a[:2] for a in ref["annotations"]] != []
    for (_, _, g), (_, _, r) in zip(got["annotations"], ref["annotations"]):
        assert set(g) == set(r) and "btsbot_score_precision" not in g
        assert g["btsbot_latest_score"] == pytest.approx(r["btsbot_latest_score"], abs=1e-6)
        assert g["btsbot_max_score"] == pytest.approx(r["btsbot_max_score"], abs=1e-6)
        assert g["btsbot_n_counting_alerts"] == r["btsbot_n_counting_alerts"]
    acted = {d[1] for d in ref["decisions"]}
    for candid, row in got["alerts"].items():
        if row[0] in acted:
            assert row[3] == "fp32" and row[2] == pytest.approx(ref["alerts"][candid][2], abs=1e-6)


def test_int8_cycle_shows_and_journals_fp32_scores_for_the_sources_acted_on(make_runtime, onnx_scorer, int8_scorer,
                                                                            example_packets, monkeypatch):
    fp32 = make_runtime("fp32", onnx_scorer)
    cycle(fp32)
    ref = journal(fp32)
    sn = [p for p in example_packets if p["objectId"] == SN]
    alone = int8_scorer.score(sn)  # what the guarded int8 model alone gives the SN: int8, != fp32 beyond 1e-6
    assert {r.precision for r in alone} == {"int8"}
    assert max(abs(r.score - ref["alerts"][r.candid][2]) for r in alone if r.candid in ref["alerts"]) > 1e-5

    whole = make_runtime("int8", int8_scorer)
    cycle(whole)
    got = journal(whole)
    assert_fp32_shown(got, ref)
    # a source no policy acts on keeps its int8 scores
    assert {row[3] for row in got["alerts"].values() if row[0] == CV} == {"int8"}

    # one alert per chunk: the SN's first alert was journaled in int8 by an earlier chunk, so at its decision
    # (second alert) it is fetched again from Kowalski and re-scored; the journal ends as with one chunk
    chunked = make_runtime("int8-chunked", int8_scorer, chunk=1)
    fetched = []
    fetch = chunked.poller.fetch
    monkeypatch.setattr(chunked.poller, "fetch", lambda keys: fetched.append([k["candid"] for k in keys]) or fetch(keys))
    report = cycle(chunked)
    assert report.n_chunks == report.n_new == len(got["alerts"])
    assert fetched == [[sn[0]["candid"]]]
    assert journal(chunked) == got


def test_a_failed_fetch_of_earlier_alerts_commits_nothing_of_its_chunk(make_runtime, int8_scorer, monkeypatch):
    reference = make_runtime("reference", int8_scorer)
    cycle(reference)

    rt = make_runtime("failing", int8_scorer, chunk=1)
    fetch = rt.poller.fetch

    def down(keys):
        raise KowalskiError("Kowalski is down")

    monkeypatch.setattr(rt.poller, "fetch", down)
    with pytest.raises(KowalskiError):
        cycle(rt)
    before = journal(rt)
    assert before["decisions"] == [] and before["alerts"] and all(r[3] == "int8" for r in before["alerts"].values()
                                                                   if r[0] == SN)
    monkeypatch.setattr(rt.poller, "fetch", fetch)
    cycle(rt)  # the next cycle takes the chunk again: the same journal as one cycle that never failed
    assert journal(rt) == journal(reference)


def test_an_earlier_alert_kowalski_no_longer_has_keeps_its_int8_score(make_runtime, int8_scorer, example_kowalski,
                                                                     example_packets, caplog):
    sn = [p for p in example_packets if p["objectId"] == SN]
    rt = make_runtime("vanished", int8_scorer)
    cycle(rt, until=(sn[0]["candidate"]["jd"] + sn[1]["candidate"]["jd"]) / 2)  # the SN's first alert only
    assert journal(rt)["alerts"][sn[0]["candid"]][3] == "int8" and journal(rt)["decisions"] == []
    example_kowalski.db["ZTF_alerts"].delete_one({"candid": sn[0]["candid"]})
    with caplog.at_level(logging.WARNING, logger="bot.fp32_scores"):
        cycle(rt)
    got = journal(rt)
    assert any(d[1] == SN for d in got["decisions"])
    assert got["alerts"][sn[0]["candid"]][3] == "int8"  # still int8, journaled as such
    assert {r[3] for c, r in got["alerts"].items() if r[0] == SN and c != sn[0]["candid"]} == {"fp32"}
    assert "keep their int8 score" in caplog.text and str(sn[0]["candid"]) in caplog.text
    # its score is neither the latest nor the max of the SN: the annotation shows fp32 scores only
    assert all("btsbot_score_precision" not in a[2] for a in got["annotations"])
