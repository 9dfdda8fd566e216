"""`btsbot explain`: the reasons, clause by clause, agree with the policy rule itself on real data; the
verdicts say which clause kept a policy from firing; the command reads the demo journal (SN 2023tyk fired
at its second alert, the CV never counted), scores avro files when asked, and shows the broker's score."""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import CV, SN

from bot.backtest.sources import ScorerSpec, from_files
from bot.cli import main
from bot.core.policies import Policy, evaluate
from bot.core.reasons import explain, why_not


@pytest.fixture(scope="module")
def scored_real(alerts_dir, onnx_scorer):
    return from_files([str(alerts_dir)], ScorerSpec.of(onnx_scorer), None).alerts


def _alert(i, score, mag, peak, age=1.0):
    return {"objectId": "ZTF", "candid": i, "jd": 2460222.5 + i, "score": score, "magpsf": mag,
            "peakmag_so_far": peak, "age": age, "model_version": "v1.0.1"}


def test_the_reasons_fire_exactly_where_the_rule_decides(scored_real, onnx_scorer):
    by_object: dict[str, list[dict]] = {}
    for a in scored_real:
        by_object.setdefault(a["objectId"], []).append(a)
    grid = itertools.product((0.1, 0.5, 0.9), (1, 2), (18.5, 19.0, 20.5), (None, 18.0), (None, 5.0))
    fired = 0
    for min_score, min_alerts, mag_max, peak_max, age_max in grid:
        p = Policy("p", min_score=min_score, min_alerts=min_alerts, alert_mag_max=mag_max, peakmag_max=peak_max,
                   age_max_days=age_max, model_version=onnx_scorer.model_version)
        for oid, rows in by_object.items():
            decision, e = evaluate(p, rows), explain(p, rows)
            if decision is None:
                assert e.fired is None and e.reason and not e.verdict.startswith("fired"), (p, oid)
            else:
                fired += 1
                assert e.fired.alert["candid"] == decision.candid and e.fired.n_counting == decision.n_counting
                assert e.reason == "" and e.verdict.startswith(f"fired at alert {e.fired.index} of {len(rows)}")
            for c in e.checks:  # clause by clause, the alert counts exactly when the rule says it does
                assert c.counting == p.counts(c.alert)
    assert fired > 20  # the grid exercises both outcomes on the real alerts


def test_verdicts_name_the_clause_that_kept_the_policy_from_firing():
    p2 = Policy("bts_p2", peakmag_max=18.5, model_version="v1.0.1")
    e = explain(p2, [_alert(1, 0.9, 18.8, 18.8), _alert(2, 0.9, 18.7, 18.62), _alert(3, 0.9, 18.7, 18.62)])
    assert e.verdict.startswith("3 of 2 counting alerts, but peak 18.62 > 18.5 mag at every alert where 2 counted")
    assert e.reason == why_not(p2, [c.alert for c in e.checks]) == "too faint (peak 18.62 > 18.5 mag)"
    e = explain(p2, [_alert(1, 0.9, 18.8, 18.8), _alert(2, 0.3, 18.0, 18.0)])
    assert e.verdict.startswith("1 of 2 counting alerts (") and e.reason == "too few alerts (1 of 2 counting)"
    e = explain(p2, [_alert(1, 0.95, 19.4, 19.4), _alert(2, 0.2, 18.0, 18.0)])
    assert e.verdict == "no counting alert: the 1 alert with score > 0.5 is not brighter than 19 mag (magpsf 19.40)"
    both = Policy("young", peakmag_max=18.5, age_max_days=3, model_version="v1.0.1")
    e = explain(both, [_alert(1, 0.9, 18.9, 18.9, 1.0), _alert(2, 0.9, 18.2, 18.2, 4.0)])
    # enough counted only at alert 2, where the peak passes and the age fails
    assert "age 4.0 d > 3 d" in e.verdict and "peak" not in e.verdict.split("but")[1]
    other = explain(p2, [{**_alert(1, 0.9, 18.0, 18.0), "model_version": "v2.0.0"}])
    assert other.verdict.startswith("no alert scored by model v1.0.1") and other.fired is None


def test_explain_the_demo_journal(demo_journal, capsys):
    assert main(["explain", SN.upper(), "--journal", str(demo_journal)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SN}: ") and "policy bts_p1" in out and "policy bts_p2" in out
    assert out.count("verdict: fired at alert 2 of") == 2 and "(2023-10-05 10:37:55 UTC)" in out
    assert "<- fired" in out and "save saved" in out and "followup posted" in out
    assert "broker's score against ours" in out and "kowalski v1.0.1" in out
    assert main(["explain", CV, "--journal", str(demo_journal), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["objectId"] == CV and len(doc["alerts"]) >= 2
    for p in doc["policies"]:
        assert p["fired"] is None and p["journal_decision"] is None
        assert p["verdict"].startswith("no counting alert: every score <= 0.5")
        assert all(a["counts"]["score"] is False and a["counting"] is False for a in p["alerts"])
    assert doc["drift"]["compared"] == len(doc["alerts"]) and doc["drift"]["over_tolerance"] == 0


def test_explain_from_alert_files_and_unknown_objects(alerts_dir, scored_real, tmp_path, capsys):
    oid = max(scored_real, key=lambda a: a["score"] or 0)["objectId"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: {backend: onnx}\n")
    assert main(["explain", oid, "--config", str(cfg), "--alerts", str(alerts_dir), "--no-score-cache"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{oid}: ") and "(files)" in out and "journal:" not in out
    assert main(["explain", "ZTF99zzzzzzz", "--config", str(cfg), "--alerts", str(alerts_dir), "--no-score-cache"]) == 1
    assert "no alert of this source" in capsys.readouterr().err
    assert main(["explain", "not an id!", "--journal", str(tmp_path / "none.sqlite")]) == 2
