"""The drift monitor: the broker's own BTSbot score, stored by the stand-ins the way each broker computes
it, journaled beside ours, compared, flagged over `drift.tolerance` -- and never used for a decision."""

from __future__ import annotations

import gzip
import io
import logging

import numpy as np
import pytest
import yaml
from astropy.io import fits

from bot.cli import main
from bot.config import load_config
from bot.core.drift import broker_score, differing_inputs
from bot.core.triplets import decode_stamp
from bot.cycle import run_cycle
from bot.journal import Journal
from bot.metrics import Metrics
from bot.report.night import build_night
from bot.report.render import text
from bot.runtime import open_runtime
from bot.sim.boom.server import BoomSim
from bot.sim.kowalski import KowalskiSim
from bot.sim.skyportal import SkyPortalSim

FILL = -3.4028235e38  # the float32 minimum ZTF templates carry at chip edges


def _window(alerts):
    jds = [a["candidate"]["jd"] for a in alerts]
    return min(jds) - 1, max(jds) + 1


def _filled(alert: dict, columns: int = 3) -> dict:
    """The alert with the fill value in the first `columns` columns of its template (a chip edge)."""
    img = decode_stamp(alert["cutoutTemplate"]["stampData"]).astype(">f4")
    img[:, :columns] = FILL
    buf = io.BytesIO()
    fits.PrimaryHDU(img).writeto(buf)
    return {**alert, "cutoutTemplate": {**alert["cutoutTemplate"], "stampData": gzip.compress(buf.getvalue())}}


def _run(tmp_path, broker, name, scorer, alerts, source="kowalski"):
    """One dry-run cycle over the alerts' window through `broker`; (report, journal rows by candid, metrics)."""
    with SkyPortalSim() as fritz:
        cfg = {"mode": "dry-run", "source": source, "state": {"path": str(tmp_path / f"{name}.sqlite")},
               "skyportal": {"url": fritz.url, "token": fritz.token, "backoff_s": 0.05},
               "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": broker.port,
                            "token": getattr(broker, "token", "unused"), "timeout_s": 5.0, "max_time_ms": 4000}}
        if source == "boom":
            cfg["boom"] = {"url": broker.url, "username": "bot", "password": "pw", "timeout_s": 5.0, "max_time_ms": 4000}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        rt = open_runtime(load_config(path), scorer=scorer)
        try:
            report = run_cycle(rt, *_window(alerts))
            rows = {r["candid"]: dict(r) for r in rt.journal._read("SELECT * FROM alerts")}
        finally:
            rt.close()
    metrics = Metrics("dry-run")
    metrics.cycle_ok(report, 0)
    return report, rows, metrics


def _metric(metrics, name):
    return metrics.registry.get_sample_value(name) or 0.0


def test_kowalski_scores_journaled_beside_ours_within_tolerance(tmp_path, real_alerts, onnx_scorer):
    with KowalskiSim(broker_model=onnx_scorer.model.predict) as kw:
        kw.load_alerts(real_alerts)
        report, rows, metrics = _run(tmp_path, kw, "k", onnx_scorer, real_alerts)
    scored = [r for r in rows.values() if r["score"] is not None]
    assert scored and all(r["source"] == "kowalski" for r in rows.values())
    assert all(r["broker_score"] is not None and r["broker_model"] == "v1.0.1" for r in scored)
    diffs = [abs(r["score"] - r["broker_score"]) for r in scored]
    # Kowalski's drb substitution moves no score of the real alerts by more than 0.016 (drbversion d6_m7)
    assert 0.001 < max(diffs) < 0.02
    assert report.drifted == [] and sorted(report.drift) == sorted(diffs)
    assert _metric(metrics, "btsbot_score_drift_count") == len(scored)
    assert _metric(metrics, "btsbot_score_drift_over_tolerance_total") == 0


def test_a_filled_template_is_flagged_and_changes_no_decision(tmp_path, real_alerts, onnx_scorer, caplog, capsys):
    ours = {r.candid: r.score for r in onnx_scorer.score(real_alerts)}
    mid = [a["candid"] for a in real_alerts if 0.5 < ours[a["candid"]] < 0.95]
    assert mid
    alerts = [_filled(a) if a["candid"] in mid else a for a in real_alerts]
    runs = {}
    for name, model in (("with", onnx_scorer.model.predict), ("without", None)):
        with KowalskiSim(broker_model=model) as kw:
            kw.load_alerts(alerts)
            with caplog.at_level(logging.WARNING, logger="bot.cycle"):
                runs[name] = _run(tmp_path, kw, name, onnx_scorer, alerts)
    report, rows, metrics = runs["with"]
    flagged = {d.candid: d for d in report.drifted}
    assert flagged and set(flagged) <= set(mid)  # only the filled templates, and at least one of them
    for candid, d in flagged.items():
        assert d.diff > 0.05 and d.ours == pytest.approx(rows[candid]["score"])
        assert any(i.startswith("template: float32-minimum fill") for i in d.inputs)
        assert rows[candid]["extra"] and "broker_differs" in rows[candid]["extra"]
        assert f"candid {candid}" in caplog.text
    assert _metric(metrics, "btsbot_score_drift_over_tolerance_total") == len(flagged)
    # evidence only: the same scores and decisions whether or not the broker stored a score
    report0, rows0, _ = runs["without"]
    assert all(r["broker_score"] is None for r in rows0.values()) and report0.drift == []
    assert {c: r["score"] for c, r in rows.items()} == {c: r["score"] for c, r in rows0.items()}
    assert [(d["policy"], d["objectId"]) for d in report.decisions] == \
        [(d["policy"], d["objectId"]) for d in report0.decisions]
    # the night report shows the largest differences, with the inputs the cycle named
    with Journal(tmp_path / "with.sqlite") as journal:
        night = build_night(journal, [], "http://fritz", *_window(alerts), drift_tolerance=0.05)
    out = text(night)
    assert f"{len(flagged)} of {len(rows) - sum(r['score'] is None for r in rows.values())} alerts" in out
    top = max(flagged.values(), key=lambda d: d.diff)
    assert f"largest |diff| {top.diff:.3f}" in out and top.line() in out
    assert night.drift.largest[0].candid == top.candid
    with Journal(tmp_path / "without.sqlite") as journal:
        assert "no alert carried a broker score" in text(build_night(journal, [], "http://fritz", *_window(alerts)))
    # and `btsbot explain` shows the source's differences beside its alerts
    capsys.readouterr()
    assert main(["explain", top.objectId, "--journal", str(tmp_path / "with.sqlite")]) == 0
    out = capsys.readouterr().out
    assert top.line() in out and "more than 0.05" in out


def test_boom_scores_differ_as_its_enrichment_does(tmp_path, real_alerts, onnx_scorer):
    with BoomSim(users={"bot": "pw"}, broker_model=onnx_scorer.model.predict) as boom:
        boom.load_alerts(real_alerts)
        report, rows, _ = _run(tmp_path, boom, "b", onnx_scorer, real_alerts, source="boom")
    scored = [r for r in rows.values() if r["score"] is not None]
    assert scored and all(r["source"] == "boom" and r["broker_model"] is None for r in rows.values())
    assert all(r["broker_score"] is not None for r in scored)
    assert report.drifted  # BOOM's age sign (and forced photometry) move some scores past 0.05
    for d in report.drifted:
        assert d.source == "boom" and d.broker_model is None
        age = rows[d.candid]["age"]
        assert (age > 0) == any(i.startswith("age: ") for i in d.inputs)


def test_broker_score_fields():
    assert broker_score({"classifications": {"bts": 0.7, "bts_version": "v1.0.1"}}, "kowalski") == (0.7, "v1.0.1")
    assert broker_score({"classifications": {"btsbot": 0.2}}, "boom") == (0.2, None)
    assert broker_score({"classifications": {"btsbot": 0.2}}, "kowalski") == (None, None)  # not Kowalski's key
    for bad in ({}, {"classifications": {}}, {"classifications": {"bts": float("nan")}},
                {"classifications": {"bts": True}}, {"classifications": {"bts": 1.5}},
                {"classifications": {"bts": "0.7"}}, {"classifications": None}):
        assert broker_score(bad, "kowalski") == (None, None)


def test_differing_inputs_name_this_alerts_differences(real_alerts):
    alert = next(a for a in real_alerts if a["candidate"].get("drb") is not None)
    feats = {"new_drb": float(alert["candidate"]["drb"]) - 0.2, "age": 3.0}
    kowalski = differing_inputs("kowalski", alert, feats)
    assert any(i.startswith("new_drb: broker") for i in kowalski) and not any(i.startswith("age") for i in kowalski)
    boom = differing_inputs("boom", _filled(alert), feats)
    assert any(i.startswith("age: broker about -3.00") for i in boom)
    assert any(i.startswith("template:") for i in boom)
    assert np.isfinite(feats["new_drb"])
