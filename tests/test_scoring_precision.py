"""The precision of a score (bot/scoring/scorer.py; the int8 model: bot/scoring/int8.py, built by quantize.py).

With `onnx-int8` every alert is scored by the int8 model, and each alert whose int8 score is at least the
fp32 floor (the lowest policy min_score minus models.int8_guard) is scored again by the fp32 model in the
same pass; every ScoreResult says which model gave its score (`precision`: "int8" or "fp32"). On the 36
real alerts and the example night: which alerts are re-scored (from the floor up, the floor itself
included, also far above the thresholds), that a re-score is the score of the fp32 backend loaded apart,
that below the floor the int8 score stays, which scorers never re-score, how the config sets the floor
(`build_scorer`), that a cycle journals each alert's precision, and that the int8 model is calibrated on the
pulled example artifacts without the simulator. Expected scores are never written down: each comes from
a second backend computed here.
"""

import json
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL

from bot.artifacts import ArtifactError, get_artifact, installed_path, sha256_of
from bot.config import load_config
from bot.cycle import run_cycle
from bot.example_data import EXAMPLE_ARTIFACTS
from bot.scoring import backends
from bot.scoring.backends import load_backends
from bot.scoring.int8 import int8_path
from bot.scoring.scorer import Scorer, build_scorer, precision_rule


@pytest.fixture(scope="module")
def int8(model_cache):
    """The onnx-int8 backend (int8 BTSbot, braai, fp32 BTSbot), loaded once for this file."""
    try:
        return load_backends("onnx-int8", model_cache)
    except ArtifactError as exc:
        if "cannot load" not in str(exc):  # missing or stale: the session cache builds it, so that is a bug
            raise
        pytest.skip(f"the int8 backend cannot run on this CPU: {exc}")


@pytest.fixture(scope="module")
def fp32_scores(onnx_scorer, real_alerts):
    """The fp32 backend's (onnx) score of each real alert."""
    return [r.score for r in onnx_scorer.score(real_alerts)]


@pytest.fixture(scope="module")
def int8_scores(int8, real_alerts):
    """The int8 model's own score of each real alert (a scorer without the fp32 model)."""
    results = Scorer(int8.model, int8.braai).score(real_alerts)
    assert {r.precision for r in results} == {"int8"} and all(r.ok for r in results)
    return [r.score for r in results]


def guarded(int8, thresholds, guard) -> Scorer:
    return Scorer(int8.model, int8.braai, fp32_model=int8.fp32_model, guard=guard, thresholds=thresholds)


@pytest.mark.parametrize("thresholds, guard", [([0.5], 0.1), ([0.85, 0.3], 0.1), ([0.5], 0.0)],
                         ids=["default", "low-threshold", "no-guard"])
def test_from_the_floor_up_the_score_is_the_fp32_backends(int8, real_alerts, fp32_scores, int8_scores,
                                                          thresholds, guard):
    scorer = guarded(int8, thresholds, guard)
    floor = min(thresholds) - guard
    assert scorer.fp32_floor == pytest.approx(floor) and scorer.rescores
    results = scorer.score(real_alerts)
    for r, fp32, alone in zip(results, fp32_scores, int8_scores):
        if alone >= floor:  # re-scored: exactly what the fp32 backend, loaded apart, gives
            assert (r.precision, r.score) == ("fp32", fp32), r.candid
        else:  # kept: the int8 model's score, below the floor, so below every threshold
            assert (r.precision, r.score) == ("int8", alone), r.candid
    precisions = [r.precision for r in results]
    assert "int8" in precisions and "fp32" in precisions  # both sides of the floor occur in the real alerts
    # the rule is one-sided: alerts far above the thresholds are re-scored too, not only those near them
    assert all(r.precision == "fp32" for r, alone in zip(results, int8_scores) if alone > 0.99)


def test_the_guard_band_catches_an_alert_the_int8_model_alone_would_miss(int8, real_alerts, fp32_scores,
                                                                          int8_scores):
    """A threshold between the int8 and the fp32 score of the real alert the int8 model underrates most:
    that alert lies in the guard band below the threshold, is scored in fp32 and counts, as in fp32."""
    guard = 0.1
    i = max((j for j, s in enumerate(int8_scores) if s > guard), key=lambda j: fp32_scores[j] - int8_scores[j])
    threshold = (int8_scores[i] + fp32_scores[i]) / 2
    assert int8_scores[i] < threshold < fp32_scores[i]
    results = guarded(int8, [threshold], guard).score(real_alerts)
    band = [j for j, s in enumerate(int8_scores) if threshold - guard <= s < threshold]
    assert i in band and all(results[j].precision == "fp32" for j in band)
    assert results[i].score > threshold  # it counts, which the int8 score alone would not
    counted = {j for j, r in enumerate(results) if r.score > threshold}
    assert counted == {j for j, s in enumerate(fp32_scores) if s > threshold}  # the fp32 backend's counting alerts
    assert "int8" in {r.precision for r in results}  # the alerts below the band keep int8


def test_the_floor_itself_is_scored_in_fp32(int8, real_alerts, fp32_scores, int8_scores):
    ordered = sorted(set(int8_scores))
    below, at = next((a, b) for a, b in pairwise(ordered) if 0.1 < a and b < 0.9)  # two distinct scores
    results = guarded(int8, [at], 0.0).score(real_alerts)  # the floor is exactly one alert's int8 score
    i_at, i_below = int8_scores.index(at), int8_scores.index(below)
    assert (results[i_at].precision, results[i_at].score) == ("fp32", fp32_scores[i_at])
    assert (results[i_below].precision, results[i_below].score) == ("int8", below)


def test_scorers_that_never_rescore_and_alerts_without_a_score(int8, onnx_scorer, real_alerts, int8_scores):
    alone = Scorer(int8.model, int8.braai, thresholds=[0.5], guard=0.1)  # int8 without the fp32 model
    assert not alone.rescores and not alone.needs_fp32(np.array(int8_scores)).any()
    results = alone.score(real_alerts)
    assert [r.score for r in results] == int8_scores and max(int8_scores) > 0.5  # int8 even above 0.5
    fp32 = Scorer(onnx_scorer.model, onnx_scorer.braai, fp32_model=int8.fp32_model, guard=0.1)
    assert fp32.precision == "fp32" and not fp32.rescores  # an fp32 model is never re-scored
    assert {r.precision for r in fp32.score(real_alerts[:4])} == {"fp32"}

    broken = dict(real_alerts[0], cutoutScience={"stampData": b"not gzip"})
    r_broken, r_ok = guarded(int8, [0.5], 0.1).score([broken, real_alerts[1]])
    assert r_broken.status.startswith("unscorable:") and (r_broken.score, r_broken.precision) == (None, None)
    assert r_ok.ok and r_ok.precision in ("int8", "fp32")
    with pytest.raises(ValueError, match="guard"):
        Scorer(int8.model, int8.braai, fp32_model=int8.fp32_model, guard=-0.1)


def test_the_config_sets_the_floor(int8, model_cache, tmp_path, monkeypatch):
    """build_scorer: the policies' min_scores and models.int8_guard make the floor (the models themselves are
    the ones loaded above, handed over instead of loading them again)."""
    asked = []
    monkeypatch.setattr(backends, "load_backends", lambda name, cache, threads=0: asked.append(name) or int8)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"models": {"backend": "onnx-int8", "int8_guard": 0.15, "cache_dir": str(model_cache)},
                                "policies": [{"name": "a", "min_score": 0.85}, {"name": "b", "min_score": 0.6}]}))
    cfg = load_config(path, env={})
    scorer = build_scorer(cfg)
    assert asked == ["onnx-int8"] and scorer.backend == "onnx-int8"
    assert scorer.thresholds == (0.6, 0.85) and scorer.guard == 0.15 and scorer.rescores
    assert scorer.fp32_floor == pytest.approx(0.45)
    assert precision_rule(scorer.backend, scorer.thresholds, scorer.guard) == "int8>=0.45"
    assert precision_rule("onnx", scorer.thresholds, scorer.guard) == "fp32"
    assert build_scorer(cfg, thresholds=[0.3]).fp32_floor == pytest.approx(0.15)  # the caller's thresholds


def test_a_cycle_journals_each_alerts_precision(int8, onnx_scorer, example_runtimes, example_packets):
    import sqlite3

    scorer = guarded(int8, [0.5], 0.1)  # the default policies' threshold and guard
    rt = example_runtimes("int8", scorer)
    run_cycle(rt, since_jd=EXAMPLE_SINCE, until_jd=EXAMPLE_UNTIL)
    db = sqlite3.connect(rt.config.journal_path)
    try:
        rows = db.execute("SELECT candid, score, precision FROM alerts WHERE status = 'ok'").fetchall()
    finally:
        db.close()
    direct = {r.candid: r for r in scorer.score(example_packets)}
    fp32 = {r.candid: r.score for r in onnx_scorer.score(example_packets)}
    assert rows and {p for _, _, p in rows} == {"int8", "fp32"}
    for candid, score, precision in rows:
        assert precision == direct[candid].precision and score == pytest.approx(direct[candid].score, abs=1e-6)
        if precision == "fp32":
            assert score == pytest.approx(fp32[candid], abs=1e-6) and score >= scorer.fp32_floor
        else:
            assert score < scorer.fp32_floor


CALIBRATE = """
import json, sys
from pathlib import Path

import numpy as np

from bot.scoring.convert import convert_to_onnx
from bot.scoring.quantize import calibration_inputs

cache = Path(sys.argv[1])
convert_to_onnx(cache)  # the fp32 conversions are current: builds the int8 model only
triplets, features = calibration_inputs(cache)
np.savez(sys.argv[2], triplets=triplets, features=features)
print(json.dumps(sorted(m for m in sys.modules if m == "bot.sim" or m.startswith("bot.sim."))))
"""


def test_the_int8_model_is_calibrated_on_the_pulled_example_without_the_simulator(model_cache, onnx_scorer,
                                                                                   example, example_packets,
                                                                                   tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(model_cache, cache)
    art = get_artifact("models", "btsbot")
    built = int8_path(art, model_cache).read_bytes()
    int8_path(art, cache).unlink()
    int8_path(art, cache).with_suffix(".json").unlink()
    proc = subprocess.run([sys.executable, "-c", CALIBRATE, str(cache), str(tmp_path / "calib.npz")],
                          capture_output=True, text=True, timeout=300, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []  # no module of bot.sim imported

    meta = json.loads(int8_path(art, cache).with_suffix(".json").read_text())
    pulled = {name: get_artifact("example_data", name) for name in EXAMPLE_ARTIFACTS}
    assert meta["calibration"] == {name: a.sha256 for name, a in pulled.items()}
    assert all(sha256_of(installed_path(a, cache)) == a.sha256 for a in pulled.values())
    assert meta["calibration_alerts"] == len(example[0])  # every example alert
    assert int8_path(art, cache).read_bytes() == built  # deterministic: the same model as the session's

    # the inputs are the example alerts as the scorer stages them for the fp32 model
    calib = np.load(tmp_path / "calib.npz")
    triplets, features, _ = onnx_scorer.model_inputs(onnx_scorer.stage(example_packets))
    assert np.array_equal(calib["triplets"], triplets.astype(np.float32))
    assert np.array_equal(calib["features"], features.astype(np.float32))
