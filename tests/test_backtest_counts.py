"""What `backtest` counts, on the 36 real alerts (35 sources, most with one alert): every source a trial
selects is `selected` (and gained/lost); the paper's exclusion (< 2 scored alerts) leaves them out of the
ratios only, shown as `excluded`; a ratio over fewer than 10 labelled sources says so."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bot.backtest import output
from bot.backtest.labels import read_labels
from bot.backtest.run import run_backtest
from bot.backtest.sources import ScorerSpec, from_files
from bot.backtest.trials import Trial, baseline_trials, build_trials
from bot.core.policies import Policy


@pytest.fixture(scope="module")
def sample(alerts_dir, onnx_scorer):
    return from_files([str(alerts_dir)], ScorerSpec.of(onnx_scorer), None)


@pytest.fixture(scope="module")
def labels(sample, tmp_path_factory):
    oids = sorted({a["objectId"] for a in sample.alerts})
    path = tmp_path_factory.mktemp("labels") / "labels.csv"
    path.write_text("objectId,label\n" + "".join(f"{o},{i % 2}\n" for i, o in enumerate(oids)))
    return read_labels(path)


def _base(onnx_scorer):
    return [(Policy("bts_p1", model_version=onnx_scorer.model_version), "saved_at"),
            (Policy("bts_p2", peakmag_max=18.5, model_version=onnx_scorer.model_version), "triggered_at")]


def test_selected_counts_every_source_a_policy_selects(sample, labels, onnx_scorer):
    base = _base(onnx_scorer)
    trials = build_trials(base, ["min_score=0.7", "min_alerts=1"])
    bt = run_backtest(sample, trials, labels, baseline_trials(base), compare=True)
    for r in bt.results:
        assert len(r.selected) == len(r.decisions) and len(r.selected) > 2
        assert set(r.selected_excluded) == {o for o in r.decisions if not bt.infos[o].eligible}
        assert r.selected_excluded  # sources with one alert: selected, but in no ratio
        assert set(r.tp + r.fp).isdisjoint(r.selected_excluded) and set(r.tp + r.fp) <= set(r.selected)
        # gained/lost count every selection: the baseline (min_alerts 2) selects none of the one-alert sources
        assert set(r.gained) >= set(r.selected_excluded) and r.lost == []
        assert r.n_completeness == len(r.tp) + len(r.fn) < 10 and output.few_sources(r)
    table = io.StringIO()
    output.write_table(bt, table)
    text = table.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("bts_p1 "))
    r = bt.results[0]
    cells = row.split()
    assert cells[1:3] == [str(len(r.selected)), str(len(r.selected_excluded))]
    assert f"(n={r.n_completeness})" in row and "a ratio over fewer than 10 labelled sources" in text
    doc = json.loads(io.StringIO(_json(bt)).readline())
    assert (doc["selected"], doc["excluded"], doc["few_sources"]) == (len(r.selected), len(r.selected_excluded), True)
    rows = list(csv.DictReader(io.StringIO(_csv(bt))))
    assert rows[0]["excluded"] == str(len(r.selected_excluded)) and rows[0]["n_completeness"] == str(r.n_completeness)


def test_a_sweep_over_one_alert_sources_is_not_flat(sample, labels, onnx_scorer):
    trials = build_trials(_base(onnx_scorer)[:1], ["min_alerts=1"], ["min_score=0.1:0.9:0.1"])
    bt = run_backtest(sample, trials, labels)
    selected = [len(r.selected) for r in bt.results]
    assert len(set(selected)) > 2 and selected == sorted(selected, reverse=True)


def test_the_paper_exclusion_still_applies_to_the_ratios(sample, labels, onnx_scorer):
    (p, human), = _base(onnx_scorer)[:1]
    loose = Trial(Policy("loose", min_score=0.0, min_alerts=1, alert_mag_max=99, model_version=p.model_version),
                  "loose", human)
    r = run_backtest(sample, [loose], labels).results[0]
    eligible = {o for o, i in r.decisions.items()} - set(r.selected_excluded)
    assert set(r.tp + r.fp) == {o for o in eligible if labels.get(o) is not None}
    assert not set(r.fn) & set(r.selected_excluded)


def _json(bt) -> str:
    out = io.StringIO()
    output.write_json(bt, out)
    return out.getvalue()


def _csv(bt) -> str:
    out = io.StringIO()
    output.write_csv(bt, out)
    return out.getvalue()
