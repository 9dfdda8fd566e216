"""`btsbot report --agreement`: a dry-run journal of the example night (the local Kowalski) against what
humans did on Fritz (a labels CSV as `btsbot labels` writes it)."""

import json

import pytest
from conftest import CV, EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.cli import EXIT_USAGE, main
from bot.timeutil import parse_time

WINDOW = ["--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)]
NEVER_SEEN = "ZTF23zzzzzzz"  # saved by a human, never passed to the bot


@pytest.fixture
def shadow_night(example_kowalski, skyportal, write_config, tmp_path):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    assert main(["run", "--once", "--config", str(config), *WINDOW]) == 0
    labels = tmp_path / "labels.csv"
    labels.write_text("objectId,label,saved_at,triggered_at\n"
                      f"{SN},1,2023-10-05T14:00:00,2023-10-05T09:00:00\n"  # saved after the bot, triggered before
                      f"{CV},0,2023-10-06T03:00:00,\n"  # a human saved the CV; the bot did not
                      f"{NEVER_SEEN},1,2023-10-07T03:00:00,\n"
                      "ZTF23yyyyyyy,0,,\n")  # classified, never saved by a human: counts for nothing
    return config, labels


def test_agreement_text(capsys, shadow_night):
    config, labels = shadow_night
    capsys.readouterr()
    assert main(["report", "--agreement", "--config", str(config), "--labels", str(labels), *WINDOW]) == 0
    out = capsys.readouterr().out
    assert "the bot's decisions (2 dry-run) against 4 labelled source(s)" in out
    assert "1 labelled source(s) carry no human save or trigger time" in out
    p1 = out.split("bts_p1 vs humans")[1].split("bts_p2 vs humans")[0]
    p2 = out.split("bts_p2 vs humans")[1]
    assert "saved (first human save): both 1, humans only 2, bot only 0" in p1
    assert "agreed 0.333" in p1 and "bot first 1 of 1" in p1
    bot_jd = parse_time("2023-10-05T10:37:55")
    assert f"({bot_jd - parse_time('2023-10-05T14:00:00'):+.2f} d)" in p1  # -0.14 d: the bot was first
    cv = next(line for line in p1.splitlines() if f"humans only {CV}" in line)
    assert "too few alerts" in cv or "no counting alert" in cv  # the failing clause, from bot.core.reasons
    assert "no alert in the journal" in next(line for line in p1.splitlines() if NEVER_SEEN in line)
    # the follow-up policy answers to the human trigger time, which came before the bot here
    assert "triggered (first human follow-up request): both 1, humans only 0, bot only 0" in p2
    assert "bot first 0 of 1" in p2


def test_agreement_json_and_bot_only(capsys, shadow_night, tmp_path):
    config, _ = shadow_night
    nobody = tmp_path / "nobody.csv"
    nobody.write_text(f"objectId,label,saved_at,triggered_at\n{CV},0,,\n")
    capsys.readouterr()
    assert main(["report", "--agreement", "--format", "json", "--config", str(config), "--labels", str(nobody),
                 *WINDOW]) == 0
    doc = json.loads(capsys.readouterr().out)
    by = {p["policy"]: p for p in doc["policies"]}
    assert doc["modes"] == {"dry-run": 2}
    assert [p["objectId"] for p in by["bts_p1"]["bot_only"]] == [SN]  # nobody saved what the bot would have
    assert by["bts_p1"]["both"] == [] and by["bts_p1"]["agreed"] is None and by["bts_p1"]["share"] == 0.0


def test_agreement_usage(capsys, shadow_night):
    config, labels = shadow_night
    assert main(["report", "--agreement", "--config", str(config), *WINDOW]) == EXIT_USAGE
    assert "needs --labels FILE" in capsys.readouterr().err
    assert main(["report", "--config", str(config), "--labels", str(labels), *WINDOW]) == EXIT_USAGE
    assert "go with --agreement" in capsys.readouterr().err


def test_agreement_reads_what_humans_did_from_a_fritz_group(capsys, shadow_night, example_kowalski, write_config):
    """--group: the saves are read from the local SkyPortal now, as `btsbot labels` reads them; an unclassified
    human save counts (agreement compares saves, not classifications)."""
    from bot.sim.skyportal import SkyPortalSim
    from bot.sim.skyportal.seed import load_seed

    seed = load_seed(None)
    seed["users"][0]["groups"].append({"id": 1003, "can_save": False})  # the bot's token reads the BTS group
    seed["objs"] = [{"id": SN, "ra": 0.0, "dec": 0.0, "classifications": [],
                     "saves": [{"group_id": 1003, "saved_by": 2, "saved_at": "2023-10-05T14:00:00"}]},
                    {"id": CV, "ra": 1.0, "dec": 1.0, "classifications": [],
                     "saves": [{"group_id": 1003, "saved_by": 1, "saved_at": "2023-10-05T15:00:00"}]}]  # the bot's
    with SkyPortalSim(seed=seed) as fritz:
        config = write_config(example_kowalski, fritz, name="fritz.yaml", mode="dry-run")  # the same journal
        capsys.readouterr()
        assert main(["report", "--agreement", "--config", str(config), "--group", "1003", *WINDOW]) == 0
        out = capsys.readouterr().out
        assert "against 2 labelled source(s)" in out and "1 labelled source(s) carry no human save" in out
        assert "saved (first human save): both 1, humans only 0, bot only 0; agreed 1.000" in out
        assert {r["method"] for r in fritz.requests} == {"GET"}
        assert main(["report", "--agreement", "--config", str(config), "--group", "999999", *WINDOW]) == EXIT_USAGE
        assert "group 999999: the Fritz token" in capsys.readouterr().err
