"""`btsbot check --cases FILE`: the shipped example cases pass on the demo journal; a wrong case fails with
exit 1 and says why; a bad cases file is exit 2 naming its line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CV, SN

from bot.backtest.cases import CasesError, load_cases
from bot.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "cases.example.yaml"


def test_the_example_cases_pass_on_the_demo_journal(demo_journal, capsys):
    assert main(["check", "--cases", str(EXAMPLE), "--journal", str(demo_journal)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(line.startswith("PASS") for line in lines)
    assert f"bts_p2 select {SN}: selected at 2023-10-05 10:37:55 UTC, by 2023-10-05 12:00:00 UTC" in lines[1]
    assert f"bts_p1 reject {CV}: not selected (no counting alert" in lines[2]


def test_a_wrong_case_fails_and_says_why(demo_journal, tmp_path, capsys):
    cases = tmp_path / "cases.yaml"
    cases.write_text(f"""cases:
  - name: the SN is bogus
    policy: bts_p1
    reject: [{SN}]
    why: deliberately wrong
  - name: too early
    policies: [bts_p2]
    select: [{SN.upper()}]
    by: 2023-10-05T09:00:00Z
  - name: the CV is a supernova
    policy: bts_p1
    select: [{CV}]
  - name: unknown object
    policy: bts_p1
    select: [ZTF99aaaaaaa]
""")
    assert main(["check", "--cases", str(cases), "--journal", str(demo_journal)]) == EXIT_FAILED
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert all(line.startswith("FAIL") for line in lines) and len(lines) == 4
    assert "selected: fired at alert 2 of" in lines[0] and "[case: deliberately wrong]" in lines[0]
    assert "after 2023-10-05 09:00:00 UTC (1.6 h late)" in lines[1]
    assert f"select {CV}: not selected: no counting alert: every score <= 0.5" in lines[2]
    assert "no alert of it in the sample" in lines[3]
    assert "0 of 4 checks passed" in out.err


@pytest.mark.parametrize("text, where", [
    ("cases:\n  - name: a\n    policy: bts_p1\n    select: [ZTF23abhvlji]\n    bye: 2023-10-05\n", "line 5: cases.0.bye"),
    ("cases:\n  - name: a\n    policy: nope\n    select: [ZTF23abhvlji]\n", "line 3: cases.0: no policy 'nope'"),
    ("cases:\n  - name: a\n    policy: bts_p1\n", "line 2: cases.0: Value error, a case needs objects"),
    ("cases:\n  - name: a\n    policy: bts_p1\n    select: [not an id!]\n", "line 4: cases.0.select"),
    ("cases:\n  - name: a\n    policy: bts_p1\n    select: [ZTF23abhvlji]\n    by: someday\n", "line 5: cases.0.by"),
    ("cases: [\n", "not YAML"),
    ("- name: a\n  policy: bts_p1\n  reject: [ZTF23abhvlji]\n  extra: 1\n", "line 4: cases.0.extra"),
])
def test_a_bad_cases_file_names_its_line_and_key(tmp_path, demo_journal, capsys, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CasesError, match=where.replace("(", r"\(")):
        load_cases(path, ["bts_p1", "bts_p2"])
    assert main(["check", "--cases", str(path), "--journal", str(demo_journal)]) == EXIT_USAGE
    assert where.split(":")[0] in capsys.readouterr().err


def test_check_over_alert_files(alerts_dir, tmp_path, capsys):
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases:\n  - name: the one source with two bright alerts\n    policy: bts_p1\n"
                     "    select: [ZTF20aajcdad]\n    since: 2020-01-01\n    until: 2020-03-01\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: {backend: onnx}\n")
    assert main(["check", "--cases", str(cases), "--config", str(cfg), "--alerts", str(alerts_dir),
                 "--no-score-cache"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("PASS")


def test_check_compare_says_where_lab_differs(demo_journal, tmp_path, capsys):
    lab = tmp_path / "lab.yaml"
    lab.write_text("policies:\n  - {name: bts_p1, min_score: 0.5, min_alerts: 2}\n"
                   "  - {name: bts_p2, min_score: 0.5, min_alerts: 2, peakmag_max: 17.0}\n")
    rc = main(["check", "--cases", str(EXAMPLE), "--journal", str(demo_journal), "--compare", str(lab)])
    out = capsys.readouterr()
    assert rc == EXIT_FAILED and "7 of 8 checks passed" in out.err
    lines = out.out.splitlines()
    differs = [line for line in lines if line.endswith("[DIFFERS]")]
    assert len(differs) == 1 and differs[0].startswith("lab  FAIL") and "bts_p2 select ZTF23abhvlji" in differs[0]
    assert "peak" in differs[0] and "> 17 mag" in differs[0]
    assert sum(line.endswith("[same]") for line in lines) == 3
