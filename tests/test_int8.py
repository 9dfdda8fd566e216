"""The onnx-int8 backend: built locally from the fp32 ONNX, guarded by fp32, same decisions as fp32."""

import json
import sqlite3

import numpy as np
import pytest

from bot.artifacts import ArtifactError, get_artifact
from bot.cli import main
from bot.config import load_config
from bot.core.policies import build_policies, evaluate
from bot.scoring.backends import load_backends
from bot.scoring.int8 import check_int8, int8_path
from bot.scoring.scorer import Scorer

POLICIES = ("bts_p1", "bts_p2", "prod_p1", "prod_p2")


PROD = """
policies:
  - {name: bts_p1, min_score: 0.5, min_alerts: 2, alert_mag_max: 19.0, actions: {save: {group_ids: [1001]}}}
  - {name: bts_p2, min_score: 0.5, min_alerts: 2, alert_mag_max: 19.0, peakmag_max: 18.5,
     actions: {followup: {allocation_id: 2001, payload: {observation_type: IFU, priority: 3}}}}
  - {name: prod_p1, min_score: 0.85, min_alerts: 1, alert_mag_max: 19.0, actions: {save: {group_ids: [1001]}}}
  - {name: prod_p2, min_score: 0.85, min_alerts: 1, alert_mag_max: 19.0, peakmag_max: 18.5,
     actions: {followup: {allocation_id: 2001, payload: {observation_type: IFU, priority: 3}}}}
"""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """The default config with the four published policies (BTS and the 2025 production alternates)."""
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(PROD)
    return load_config(str(path))


@pytest.fixture(scope="module")
def scorers(model_cache, cfg):
    int8, braai, fp32 = load_backends("onnx-int8", model_cache)
    thresholds = [p.min_score for p in cfg.policies]
    guarded = Scorer(int8, braai, fp32_model=fp32, guard=cfg.models.int8_guard, thresholds=thresholds)
    return Scorer(fp32, braai), Scorer(int8, braai), guarded


@pytest.fixture(scope="module")
def all_alerts(real_alerts, example_packets):
    return list(real_alerts) + list(example_packets)


def _rows(results):
    return [{"objectId": r.objectId, "candid": r.candid, "jd": r.jd, "score": r.score, "magpsf": r.magpsf,
             "peakmag_so_far": r.features.get("peakmag_so_far"), "age": r.features.get("age"),
             "model_version": "v1.0.1"} for r in results if r.ok]


def _decisions(cfg, rows):
    out = {}
    for policy in build_policies(cfg.policies, ["v1.0.1"]):
        for oid in sorted({r["objectId"] for r in rows}):
            d = evaluate(policy, [r for r in rows if r["objectId"] == oid])
            out[(policy.name, oid)] = None if d is None else (d.candid, d.n_counting)
    return out


def test_int8_model_is_recorded_with_its_source(model_cache):
    path = check_int8(model_cache)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["source_sha256"] == get_artifact("models", "btsbot").sha256
    assert meta["calibration_alerts"] > 0 and meta["quantized_nodes"] == 4  # the four Conv layers only


def test_a_stale_int8_model_is_refused(model_cache, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(model_cache, cache)
    meta = int8_path(get_artifact("models", "btsbot"), cache).with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "fp32_onnx_sha256": "0" * 64}))
    with pytest.raises(ArtifactError, match="models convert"):
        load_backends("onnx-int8", cache)


def test_int8_error_stays_inside_the_guard_on_all_real_data(scorers, all_alerts, cfg):
    fp32, int8, _ = scorers
    a = np.array([r.score for r in fp32.score(all_alerts) if r.ok])
    b = np.array([r.score for r in int8.score(all_alerts) if r.ok])
    assert len(a) == len(all_alerts) == 75
    err = np.abs(a - b)
    assert err.max() < cfg.models.int8_guard, f"max |int8 - fp32| {err.max():.4f} exceeds the guard: widen it"
    assert err.max() > 0  # the int8 model is really another model


def test_guarded_int8_makes_the_fp32_decisions_for_every_source(scorers, all_alerts, cfg):
    fp32, _, guarded = scorers
    ref, got = fp32.score(all_alerts), guarded.score(all_alerts)
    assert {p.name for p in cfg.policies} >= set(POLICIES)
    ref_dec, got_dec = _decisions(cfg, _rows(ref)), _decisions(cfg, _rows(got))
    assert ref_dec == got_dec
    assert any(v is not None for v in ref_dec.values())  # some source is acted on
    precisions = {r.precision for r in got if r.ok}
    assert precisions <= {"int8", "fp32"} and "int8" in precisions
    floor = min(p.min_score for p in cfg.policies) - cfg.models.int8_guard
    assert guarded.fp32_floor == pytest.approx(floor)
    for r, g in zip(ref, got):  # at or above the floor: exactly the fp32 score; below it, int8 and < floor
        if g.precision == "fp32":
            assert g.score == r.score
        else:
            assert g.score < floor and r.score < min(p.min_score for p in cfg.policies)


def test_the_fp32_floor_is_driven_by_the_thresholds_and_the_guard(scorers, all_alerts):
    fp32, int8, _ = scorers
    wide = Scorer(int8.model, int8.braai, fp32_model=fp32.model, guard=1.0)
    assert {r.precision for r in wide.score(all_alerts) if r.ok} == {"fp32"}
    off = Scorer(int8.model, int8.braai, fp32_model=fp32.model, guard=0.0, thresholds=[2.0])  # above any score
    assert {r.precision for r in off.score(all_alerts) if r.ok} == {"int8"}
    assert {r.precision for r in fp32.score(all_alerts[:3])} == {"fp32"}
    mid = Scorer(int8.model, int8.braai, fp32_model=fp32.model, guard=0.1, thresholds=[0.85, 0.5])
    assert mid.fp32_floor == pytest.approx(0.4)  # the lowest threshold minus the guard
    alone = int8.score(all_alerts)
    for a, m, r in zip(alone, mid.score(all_alerts), fp32.score(all_alerts)):
        assert (m.score, m.precision) == ((r.score, "fp32") if a.score >= 0.4 else (a.score, "int8"))


def test_score_cli_reports_the_precision(capsys, model_cache, alerts_dir):
    rc = main(["score", str(alerts_dir), "--cache-dir", str(model_cache), "--backend", "onnx-int8", "--format", "json"])
    out, _ = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rc == 0 and len(rows) == 36
    assert {r["precision"] for r in rows} <= {"int8", "fp32"} and {r["status"] for r in rows} == {"ok"}


def test_journal_gains_the_precision_column(tmp_path):
    from bot.journal import Journal

    path = tmp_path / "old.sqlite"
    with Journal(path) as j:
        pass
    con = sqlite3.connect(path)  # a journal written before the column existed
    con.execute("ALTER TABLE alerts DROP COLUMN precision")
    con.execute("UPDATE schema_version SET version = 1")  # as such a journal says of itself
    con.commit()
    con.close()
    with Journal(path) as j:
        j.record_alerts([{"candid": 1, "objectId": "ZTF1", "jd": 2460000.5, "model_version": "v1.0.1",
                          "status": "ok", "score": 0.7, "precision": "int8"}])
        assert j.alerts_for_object("ZTF1")[0]["precision"] == "int8"
    with Journal(path) as j:  # idempotent
        assert j.alerts_for_object("ZTF1")[0]["precision"] == "int8"
