"""The seed README's check and backend agreement: scores must equal the model as trained."""

import numpy as np

from bot.core.features import FEATURES
from bot.scoring.scorer import Scorer


def _example_arrays(example):
    rows, triplets = example
    feats = np.array([[float(r[f]) for f in FEATURES] for r in rows])
    expected = np.array([float(r["expected_scores"]) for r in rows])
    return triplets.astype(np.float32), feats, expected


def test_seed_readme_check(backend_models, example):
    """Example triplets + the CSV's 25 columns give expected_scores (median < 1e-6, max < 1e-5)."""
    name, model, braai = backend_models
    triplets, feats, expected = _example_arrays(example)
    scores = Scorer(model, braai, batch_size=16).predict(triplets, feats)  # 3 batches, last one partial
    diff = np.abs(scores - expected)
    assert np.median(diff) < 1e-6, name
    assert diff.max() < 1e-5, name


def test_braai_reproduces_new_drb(backend_models, example):
    name, _, braai = backend_models
    rows, triplets = example
    new_drb = np.array([float(r["new_drb"]) for r in rows])
    assert np.abs(braai.predict(triplets.astype(np.float32)) - new_drb).max() < 1e-6, name


def test_example_policy_facts(example):
    """The data the policies tests rely on: SN 2023tyk scores high from its first alert, the CV never."""
    rows, _ = example
    sn = [float(r["expected_scores"]) for r in rows if r["objectId"] == "ZTF23abhvlji"]
    cv = [float(r["expected_scores"]) for r in rows if r["objectId"] == "ZTF23abdsfms"]
    assert len(sn) == 23 and len(cv) == 16
    assert min(sn) > 0.5 and max(cv) < 0.01


def test_backends_agree_on_real_alerts(model_cache, real_alerts):
    """TensorFlow (reference) and ONNX Runtime give the same score to 1e-5 on every real alert."""
    from conftest import _backends

    from bot.scoring.backends import load_backends

    scores = {}
    for name in ("onnx", "tensorflow"):
        if name not in _backends:
            _backends[name] = load_backends(name, model_cache)
        results = Scorer(*_backends[name], batch_size=7).score(real_alerts)
        assert all(r.status == "ok" for r in results), [r.status for r in results if r.status != "ok"]
        scores[name] = np.array([r.score for r in results])
    assert np.abs(scores["onnx"] - scores["tensorflow"]).max() < 1e-5
    assert (scores["onnx"] > 0.5).sum() >= 5  # real transients among them, not a degenerate model
