"""`backtest --compare LAB.yaml`: prod's and lab's policies over the same alerts and scores: flips (sources
only one selects, with the time and label), decision-time moves, metric changes; table and JSON."""

from __future__ import annotations

import json

from conftest import CV, SN

from bot.cli import main

LAB = """policies:
  - {name: bts_p1, min_score: 0.5, min_alerts: 1, alert_mag_max: 19.0, actions: {save: {group_ids: [1001]}}}
  - {name: bts_p2, min_score: 0.5, min_alerts: 2, alert_mag_max: 19.0, peakmag_max: 17.0}
  - {name: lab_only, min_score: 0.9, min_alerts: 1}
"""


def test_compare_on_the_demo_journal(demo_journal, tmp_path, capsys):
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label\n{SN},1\n{CV},0\n")
    args = ["backtest", "--journal", str(demo_journal), "--labels", str(labels), "--compare", str(lab)]
    assert main(args) == 0
    out = capsys.readouterr().out
    text = out[out.index("prod vs lab"):]
    # bts_p1 with one alert fires at the SN's first alert, two days earlier
    assert f"moved: {SN} 2023-10-05 10:37:55 UTC -> 2023-10-03 10:35:02 UTC (-48.05 h)" in text
    # bts_p2 with peak <= 17 never fires: a flip, prod only, with its label, and completeness falls by 1
    assert f"flip: {SN} selected by prod only (at 2023-10-05 10:37:55 UTC; label 1)" in text
    assert "bts_p2: selected 1 -> 0, completeness -1.000" in text
    assert "lab_only (lab only): selected - -> 1" in text
    assert main(args + ["--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    diffs = {r["policy"]: r for r in rows if r.get("compare")}
    assert set(diffs) == {"bts_p1", "bts_p2", "lab_only"}
    assert diffs["bts_p2"]["flips"] == [{"objectId": SN, "selected_by": "prod", "prod_at": "2023-10-05 10:37:55 UTC",
                                         "lab_at": None, "label": 1}]
    assert diffs["bts_p2"]["d_completeness"] == -1.0 and diffs["bts_p1"]["moved"][0]["dt_hours"] < 0
    assert not diffs["bts_p1"]["same"]


def test_the_same_config_compares_equal(demo_journal, capsys):
    from pathlib import Path

    defaults = Path(__file__).resolve().parents[1] / "config" / "config.defaults.yaml"
    assert main(["backtest", "--journal", str(demo_journal), "--compare", str(defaults)]) == 0
    text = capsys.readouterr().out.split("prod vs lab")[1]
    assert text.count("the same decisions") == 2 and "flip" not in text and "moved" not in text


def test_the_comparison_is_in_the_html_report(demo_journal, tmp_path, capsys):
    lab = tmp_path / "lab.yaml"
    lab.write_text(LAB)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label\n{SN},1\n{CV},0\n")
    out = tmp_path / "report"
    assert main(["backtest", "--journal", str(demo_journal), "--labels", str(labels), "--compare", str(lab),
                 "--report", str(out)]) == 0
    capsys.readouterr()
    page = (out / "index.html").read_text()
    section = page[page.index("<h2>Compared: prod vs lab</h2>"):page.index("<h2>Completeness and purity")]
    assert f"flip: {SN} selected by prod only (at 2023-10-05 10:37:55 UTC; label 1)" in section
    assert f"moved: {SN} 2023-10-05 10:37:55 UTC → 2023-10-03 10:35:02 UTC (-48.05 h)" in section
    assert "lab_only (lab only)" in section and "-1.000" in section
    plain = tmp_path / "plain"
    assert main(["backtest", "--journal", str(demo_journal), "--report", str(plain)]) == 0
    assert "Compared:" not in (plain / "index.html").read_text()
