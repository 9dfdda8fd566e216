"""`btsbot backtest` over the README example packets, scored like `btsbot score`, against labels."""

import json

import pytest
from avro_packets import write_packet
from conftest import CV, SN

from bot.backtest import cli as bt_cli
from bot.backtest.sources import ScorerSpec
from bot.cli import build_parser


def run(capsys, onnx_scorer, *argv):
    args = build_parser().parse_args(["backtest", *map(str, argv)])
    rc = bt_cli.cmd_backtest(args, spec=ScorerSpec.of(onnx_scorer))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def packets_dir(tmp_path, example_packets, ztf_schema):
    d = tmp_path / "alerts"
    d.mkdir()
    for i, packet in enumerate(example_packets):
        write_packet(d / f"{i:02d}_{packet['candid']}.avro", ztf_schema, packet)
    return d


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.csv"
    # a human saved SN 2023tyk on 2023-10-05 12:00 UTC and requested its spectrum at 2023-10-05 14:00
    path.write_text(f"objectId,label,saved_at,triggered_at\n{SN},1,2023-10-05T12:00:00Z,2460223.0833333\n{CV},0,,\n")
    return path


def test_example_completeness_purity_and_decision_time(capsys, onnx_scorer, packets_dir, labels, tmp_path,
                                                       example_packets):
    cache = tmp_path / "scores.sqlite"
    rc, out, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--labels", labels, "--format", "json",
                       "--score-cache", cache)
    assert rc == 0, err
    rows = {r["policy"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {"bts_p1", "bts_p2"}
    second_sn = [p for p in example_packets if p["objectId"] == SN][1]
    for name, r in rows.items():
        assert (r["completeness"], r["purity"], r["tp"], r["fp"], r["fn"], r["selected"]) == (1.0, 1.0, 1, 0, 0, 1)
        (d,) = r["decisions"]
        assert (d["objectId"], d["candid"], d["utc"]) == (SN, second_sn["candid"], "2023-10-05 10:37:55 UTC")
        assert d["label"] == 1 and r["excluded_sources"] == 0 and r["unlabelled_sources"] == 0
        assert len(r["bins"]) == 6 and r["bins"][0]["bin"] == "17.00-17.25"
    # the SN's peak (17.91 mag at its alerts) is in the 17.75-18.00 bin; the CV is brighter than 17
    assert [b["tp"] for b in rows["bts_p1"]["bins"]] == [0, 0, 0, 1, 0, 0]
    # bts_p1 saves -> compared with saved_at (12:00), bts_p2 triggers -> with triggered_at (14:00): bot first
    assert rows["bts_p1"]["median_delay_days"] == pytest.approx(-(1 + 22 / 60 + 5 / 3600) / 24, abs=1e-5)
    assert rows["bts_p2"]["median_delay_days"] == pytest.approx(-(3 + 22 / 60 + 5 / 3600) / 24, abs=1e-5)
    assert rows["bts_p1"]["bot_first_fraction"] == 1.0
    # the second run reads every score back from the cache: it never scores
    rc, out2, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--labels", labels, "--format", "json",
                        "--score-cache", cache)
    assert rc == 0 and out2 == out
    assert "0 scored now, 39 from the score cache" in err


def test_cached_scores_are_the_model_scores(onnx_scorer, packets_dir, tmp_path, example, example_packets):
    from bot.backtest.cache import ScoreCache
    from bot.backtest.sources import from_files

    rows, _ = example
    expected = {p["candid"]: float(r["expected_scores"]) for p, r in zip(example_packets, rows)}
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        cold = from_files([packets_dir], ScorerSpec.of(onnx_scorer), cache)
        # warm: the model is never loaded (loading it would raise)
        warm = from_files([packets_dir], ScorerSpec(onnx_scorer.model_version, "braai", lambda: 1 / 0), cache)
        # another preprocessing version (new_drb from the alert) is another key: it needs the model
        with pytest.raises(ZeroDivisionError):
            from_files([packets_dir], ScorerSpec(onnx_scorer.model_version, "alert", lambda: 1 / 0), cache)
    assert (cold.scored_now, cold.cached, warm.scored_now, warm.cached) == (39, 0, 0, 39)
    for sample in (cold, warm):
        got = {a["candid"]: a["score"] for a in sample.alerts}
        assert max(abs(got[c] - e) for c, e in expected.items()) < 1e-4
        assert {a["candid"]: a["peakmag_so_far"] for a in sample.alerts} == \
            {a["candid"]: a["peakmag_so_far"] for a in cold.alerts}


def test_sweep_baseline_table_and_csv(capsys, onnx_scorer, packets_dir, labels, tmp_path):
    common = ["--alerts", packets_dir, "--labels", labels, "--score-cache", tmp_path / "c.sqlite"]
    rc, out, err = run(capsys, onnx_scorer, *common, "--sweep", "bts_p1.min_alerts=1:3:1", "--baseline",
                       "--format", "json")
    assert rc == 0, err
    rows = {r["policy"]: r for r in map(json.loads, out.splitlines())}
    assert list(rows) == ["bts_p1[min_alerts=1]", "bts_p1[min_alerts=2]", "bts_p1[min_alerts=3]", "bts_p2"]
    first = {r["policy"]: r["decisions"][0]["utc"] for r in rows.values()}
    assert first["bts_p1[min_alerts=1]"].startswith("2023-10-03 10:35")  # its first alert
    assert first["bts_p1[min_alerts=2]"] == first["bts_p2"] == "2023-10-05 10:37:55 UTC"
    assert first["bts_p1[min_alerts=3]"].startswith("2023-10-05 11:47")  # its third
    assert all(r["gained"] == [] and r["lost"] == [] for r in rows.values())
    # a threshold that loses the SN: lost by name, completeness 0
    rc, out, _ = run(capsys, onnx_scorer, *common, "--set", "bts_p2.peakmag_max=17.5", "--baseline", "--format", "json")
    p2 = [r for r in map(json.loads, out.splitlines()) if r["policy"] == "bts_p2"][0]
    assert p2["lost"] == [SN] and p2["completeness"] == 0.0 and p2["fn"] == 1 and p2["purity"] is None
    # the table: grouped by policy, aligned whatever the names' length
    rc, out, _ = run(capsys, onnx_scorer, *common, "--sweep", "min_score=0.5,0.99999")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("policy"))
    body = lines[lines.index(header) + 1: lines.index(header) + 5]
    assert len({len(line) for line in [header] + body}) == 1
    assert any(line.startswith("bts_p2[min_score=0.99999]") for line in body)
    rc, out, _ = run(capsys, onnx_scorer, *common, "--format", "csv")
    import csv
    import io

    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["policy"] for r in table] == ["bts_p1", "bts_p2"] and table[0]["completeness_17.75-18.00"] == "1.0"


def test_report_dir_has_real_pngs(capsys, onnx_scorer, packets_dir, tmp_path):
    import matplotlib.image

    labels = tmp_path / "explorer.csv"  # the BTS Sample Explorer export, as it is: the SN is an Ia, the CV a CV
    labels.write_text(f"ZTFID,IAUID,RA,Dec,peakt,peakfilt,peakmag,type\n{SN},SN 2023tyk,1,2,3,g,17.9,SN Ia\n"
                      f"{CV},AT 2023sxt,1,2,3,g,15.6,CV\n")
    common = ["--alerts", packets_dir, "--labels", labels, "--score-cache", tmp_path / "c.sqlite", "--format", "json"]
    rc, out, err = run(capsys, onnx_scorer, *common, "--sweep", "min_score=0.9:0.9999:0.0333", "--report", tmp_path / "a")
    assert rc == 0, err
    assert [json.loads(line)["policy"] for line in out.splitlines()][:4] == [
        "bts_p1[min_score=0.9]", "bts_p1[min_score=0.9333]", "bts_p1[min_score=0.9666]", "bts_p1[min_score=0.9999]"]
    rc, out, err = run(capsys, onnx_scorer, *common, "--set", "bts_p1.min_alerts=30", "--report", tmp_path / "b")
    assert rc == 0, err
    pngs = {p.name for p in (tmp_path / "a").glob("*.png")} | {p.name for p in (tmp_path / "b").glob("*.png")}
    assert {"sweep_min_score.png", "bins.png", f"source_{SN}.png"} <= pngs  # the SN: a false negative of bts_p1
    for p in [*(tmp_path / "a").glob("*.png"), *(tmp_path / "b").glob("*.png")]:
        assert matplotlib.image.imread(p).shape[0] > 100  # decodes: a real image
    assert f"source_{SN}.png" in (tmp_path / "b" / "index.html").read_text()


def test_errors_are_one_line_and_nonzero(capsys, onnx_scorer, packets_dir, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("objectId,label\nZTF99aaaaaaa,1\n")
    rc, out, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--labels", other, "--score-cache", tmp_path / "c")
    assert rc == 1 and out == "" and "none of the 1 labelled objects" in err and len(err.splitlines()) == 1
    rc, _, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--set", "model_version=v9", "--score-cache",
                     tmp_path / "c")
    assert rc == 1 and "no scores for model_version 'v9'" in err
    empty = tmp_path / "empty.yaml"
    empty.write_text("policies: []\n")
    rc, _, err = run(capsys, onnx_scorer, "--config", empty, "--alerts", packets_dir)
    assert rc == 1 and "no policy to try" in err
    bad = tmp_path / "bad.csv"
    bad.write_text(f"objectId,label\n{SN},maybe\n")
    rc, _, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--labels", bad)
    assert rc == 1 and "line 2" in err
    rc, _, err = run(capsys, onnx_scorer, "--alerts", packets_dir, "--sweep", "min_score=a,b")
    assert rc == 2 and "min_score must be a number" in err
