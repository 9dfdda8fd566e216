"""`btsbot backtest --journal` (replay what the bot journaled) and `--kowalski` (a window as the daemon sees it)."""

import json

from conftest import CV, EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.backtest import cli as bt_cli
from bot.backtest.sources import ScorerSpec
from bot.cli import build_parser, main


def test_backtest_replays_other_policies_over_the_journal(capsys, example_kowalski, skyportal, write_config,
                                                          example_packets):
    """(moved from test_run_once.py, for the per-policy JSON objects)"""
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    assert main(["run", "--once", "--config", str(config), "--since", str(EXAMPLE_SINCE),
                 "--until", str(EXAMPLE_UNTIL)]) == 0
    trial = write_config(example_kowalski, skyportal, name="trial.yaml", state={"path": "journal.sqlite"},
                         policies=[{"name": "prod_p1", "min_score": 0.85, "min_alerts": 1},
                                   {"name": "strict", "min_score": 0.999, "min_alerts": 3, "peakmag_max": 18.0}])
    capsys.readouterr()
    assert main(["backtest", "--config", str(trial), "--format", "json"]) == 0
    rows = {r["policy"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    first_sn = [p for p in example_packets if p["objectId"] == SN][0]
    assert [(d["objectId"], d["candid"]) for d in rows["prod_p1"]["decisions"]] == [(SN, first_sn["candid"])]
    assert rows["prod_p1"]["selected"] == 1 and rows["prod_p1"]["sources"] == 2
    assert rows["prod_p1"]["median_days_first_alert_to_decision"] == 0.0  # fires at the first alert
    assert rows["prod_p1"]["completeness"] is None  # no labels, no ratios
    assert all(d["objectId"] == SN for r in rows.values() for d in r["decisions"])
    assert main(["backtest", "--config", str(trial)]) == 0
    out = capsys.readouterr().out
    assert "33 alerts of 2 sources from journal" in out and "\nprod_p1  " in out


def test_kowalski_window_gives_the_decision_the_daemon_makes(capsys, example_kowalski, skyportal, write_config,
                                                             onnx_scorer, tmp_path):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label\n{SN},1\n{CV},0\n")
    argv = ["backtest", "--config", str(config), "--kowalski", "--since", str(EXAMPLE_SINCE), "--until",
            str(EXAMPLE_UNTIL), "--labels", str(labels), "--format", "json", "--score-cache", str(tmp_path / "c")]
    outs = []
    for _ in range(2):
        assert bt_cli.cmd_backtest(build_parser().parse_args(argv), spec=ScorerSpec.of(onnx_scorer)) == 0
        out, err = capsys.readouterr()
        outs.append(out)
    rows = {r["policy"]: r for r in map(json.loads, outs[0].splitlines())}
    for r in rows.values():
        assert (r["completeness"], r["purity"]) == (1.0, 1.0)
        assert [d["utc"] for d in r["decisions"]] == ["2023-10-05 10:37:55 UTC"]
    assert outs[1] == outs[0] and "0 scored now" in err  # Kowalski-history scores cached under their own key


def test_broker_window_from_boom_gives_the_same_decisions_as_from_kowalski(capsys, example_kowalski, skyportal,
                                                                           write_config, onnx_scorer, tmp_path,
                                                                           example_packets):
    """`--broker` polls the config's `source:`; `--broker boom` the local BOOM; `--kowalski` is `--broker kowalski`."""
    import yaml

    from bot.sim.boom.server import BoomSim

    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label\n{SN},1\n{CV},0\n")
    with BoomSim(users={"bot": "pw"}) as boom:
        boom.load_alerts(example_packets)
        config = write_config(example_kowalski, skyportal, mode="dry-run")
        data = yaml.safe_load(config.read_text())
        data.update(source="boom", boom={"url": boom.url, "username": "bot", "password": "pw", "timeout_s": 5.0,
                                         "max_time_ms": 4000, "backoff_s": 0.05})
        config.write_text(yaml.safe_dump(data))
        common = ["--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL), "--labels", str(labels),
                  "--format", "json", "--score-cache", str(tmp_path / "c")]
        runs = {}
        for flags in (["--broker"], ["--broker", "boom"], ["--kowalski"], ["--broker", "kowalski"]):
            argv = ["backtest", "--config", str(config), *flags, *common]
            assert bt_cli.cmd_backtest(build_parser().parse_args(argv), spec=ScorerSpec.of(onnx_scorer)) == 0
            out, err = capsys.readouterr()
            runs[" ".join(flags)] = ([json.loads(x) for x in out.splitlines()], err)
        assert boom.request_counts.get("POST /queries/find", 0) > 0
    assert "from boom" in runs["--broker"][1] and "from kowalski" in runs["--kowalski"][1]
    assert runs["--broker"][0] == runs["--broker boom"][0]
    assert runs["--kowalski"][0] == runs["--broker kowalski"][0]

    def decisions(rows):
        return {r["policy"]: [(d["objectId"], d["candid"], d["utc"]) for d in r["decisions"]] for r in rows}

    assert decisions(runs["--broker"][0]) == decisions(runs["--kowalski"][0])
    assert [d[2] for d in decisions(runs["--broker"][0])["bts_p1"]] == ["2023-10-05 10:37:55 UTC"]
    # scores through each broker are cached under their own key: the second source scored its own
    assert "0 scored now" in runs["--broker boom"][1] and "0 scored now" not in runs["--kowalski"][1]


def test_broker_boom_refuses_the_alert_drb(capsys, example_kowalski, skyportal, write_config, onnx_scorer):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    argv = ["backtest", "--config", str(config), "--broker", "boom", "--drb-source", "alert",
            "--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)]
    assert bt_cli.cmd_backtest(build_parser().parse_args(argv)) == 1
    assert "BOOM keeps no drbversion" in capsys.readouterr().err
