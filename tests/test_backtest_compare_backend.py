"""`backtest --compare-backend`: the same alerts scored again with another backend, the trial policies'
decisions compared (flips, time moves, metric changes); on the 36 real alerts of ../shared.

The int8 path's promise (the daemon's rule: int8, fp32 from the lowest min_score minus the guard up) is
the same decisions as fp32; the raw int8 model, at a threshold between an alert's two scores, flips."""

from __future__ import annotations

import json

import pytest

from bot.backtest import cli as bt_cli
from bot.backtest.cache import ScoreCache
from bot.backtest.sources import ScorerSpec, from_files
from bot.cli import EXIT_USAGE, main
from bot.cli.app import build_parser
from bot.scoring.backends import load_backends
from bot.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def int8_models(model_cache):
    return load_backends("onnx-int8", model_cache)  # (int8 btsbot, braai, fp32 btsbot)


def run(capsys, argv, spec, compare_spec):
    rc = bt_cli.cmd_backtest(build_parser().parse_args(argv), spec=spec, compare_spec=compare_spec)
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_daemons_int8_rule_makes_the_fp32_decisions(capsys, alerts_dir, onnx_scorer, int8_models):
    int8, braai, fp32 = int8_models
    guarded = Scorer(int8, braai, fp32_model=fp32, guard=0.1, thresholds=[0.3])
    argv = ["backtest", "--alerts", str(alerts_dir), "--no-score-cache", "--sweep", "min_score=0.3:0.95:0.05",
            "--sweep", "min_alerts=1,2", "--compare-backend", "onnx-int8"]
    rc, out, _ = run(capsys, argv, ScorerSpec.of(onnx_scorer), ScorerSpec.of(guarded))
    assert rc == 0
    text = out[out.index("onnx-int8 ("):]
    assert "the same 36 alerts" in text and " fp32" in text and " int8" in text
    rows = [line for line in text.splitlines()[1:] if line.startswith("bts_")]
    assert len(rows) == 2 * 14 * 2 and all(r.endswith("the same decisions") for r in rows)


def test_the_raw_int8_model_flips_a_decision_at_a_threshold_between_the_two_scores(capsys, alerts_dir,
                                                                                   onnx_scorer, int8_models):
    int8, braai, _ = int8_models
    raw = Scorer(int8, braai)  # no fp32 model: every score int8
    a = {r["candid"]: r for r in from_files([str(alerts_dir)], ScorerSpec.of(onnx_scorer), None).alerts}
    b = {r["candid"]: r for r in from_files([str(alerts_dir)], ScorerSpec.of(raw), None).alerts}
    # the alert whose score moves most, in a source with that one alert passing the magnitude cut
    candid = max((c for c in a if a[c]["score"] is not None and a[c]["magpsf"] < 19.0),
                 key=lambda c: abs(a[c]["score"] - b[c]["score"]))
    oid, s32, s8 = a[candid]["objectId"], a[candid]["score"], b[candid]["score"]
    assert abs(s32 - s8) > 0.01
    others = [r["score"] for r in a.values() if r["objectId"] == oid and r["candid"] != candid and r["score"]]
    cut = (s32 + s8) / 2
    assert all(abs(s - cut) > abs(s32 - s8) for s in others + [b[c]["score"] for c in b if b[c]["objectId"] == oid
                                                                and c != candid])
    argv = ["backtest", "--alerts", str(alerts_dir), "--no-score-cache", "--set", f"min_score={cut}",
            "--set", "min_alerts=1", "--compare-backend", "onnx-int8", "--format", "json"]
    rc, out, _ = run(capsys, argv, ScorerSpec.of(onnx_scorer), ScorerSpec.of(raw))
    assert rc == 0
    diffs = {r["policy"]: r for r in map(json.loads, out.splitlines()) if r.get("compare")}
    assert diffs["bts_p1"]["compare"] == "the given scorer vs onnx-int8"
    flips = [(f["objectId"], f["selected_by"]) for f in diffs["bts_p1"]["flips"]]
    assert (oid, "prod" if s32 > s8 else "lab") in flips and not diffs["bts_p1"]["same"]


def test_scores_of_another_precision_rule_are_another_cache_key(tmp_path, alerts_dir, onnx_scorer, int8_models):
    int8, braai, fp32 = int8_models
    guarded = Scorer(int8, braai, fp32_model=fp32, guard=0.1, thresholds=[0.5])
    mv = onnx_scorer.model_version
    with ScoreCache(tmp_path / "scores.sqlite") as cache:
        cold = from_files([str(alerts_dir)], ScorerSpec.of(onnx_scorer), cache)
        with pytest.raises(ZeroDivisionError):  # int8 scores are not in the cache: the model must be loaded
            from_files([str(alerts_dir)], ScorerSpec(mv, "braai", lambda: 1 / 0, "int8>=0.4"), cache)
        int8_cold = from_files([str(alerts_dir)], ScorerSpec.of(guarded), cache)
        warm = from_files([str(alerts_dir)], ScorerSpec(mv, "braai", lambda: 1 / 0, "int8>=0.4"), cache)
        fp32_warm = from_files([str(alerts_dir)], ScorerSpec(mv, "braai", lambda: 1 / 0), cache)
    assert (int8_cold.scored_now, warm.scored_now, warm.cached) == (36, 0, 36)
    score = {(r["candid"], r["precision"]): r["score"] for r in warm.alerts}
    assert {p for _, p in score} == {"int8", "fp32"}
    assert {r["candid"]: r["score"] for r in fp32_warm.alerts} == {r["candid"]: r["score"] for r in cold.alerts}


def test_compare_backend_usage_errors(capsys, demo_journal, tmp_path):
    assert main(["backtest", "--journal", str(demo_journal), "--compare-backend", "onnx-int8"]) == EXIT_USAGE
    assert "needs --alerts or --broker" in capsys.readouterr().err
    lab = tmp_path / "lab.yaml"
    lab.write_text("policies: []\n")
    assert main(["backtest", "--alerts", str(tmp_path), "--compare", str(lab), "--compare-backend", "onnx"]) == EXIT_USAGE
    assert "one comparison at a time" in capsys.readouterr().err
