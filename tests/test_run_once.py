"""`btsbot run --once` against the local Kowalski (example packets) and the local SkyPortal."""

import json

import pytest
import requests
from conftest import CV, EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.cli import main

WINDOW = ["--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)]


def run_once(config, *extra):
    return main(["run", "--once", "--config", str(config), *WINDOW, *extra])


def sp_get(sim, path, **params):
    r = requests.get(sim.url + path, params=params, headers={"Authorization": f"token {sim.token}"}, timeout=5)
    return r.json()["data"]


def test_sn_2023tyk_saved_and_triggered_at_its_second_alert(capsys, example_kowalski, skyportal, write_config,
                                                            example_packets):
    config = write_config(example_kowalski, skyportal)
    assert run_once(config) == 0
    out = capsys.readouterr().out
    second = [p for p in example_packets if p["objectId"] == SN][1]
    assert second["candidate"]["jd"] == pytest.approx(2460222.943)
    assert f"bts_p1 selects {SN} at candid {second['candid']}" in out
    assert f"bts_p2 selects {SN} at candid {second['candid']}" in out

    writes = skyportal.writes()
    assert all(SN in (w["path"] + json.dumps(w["body"])) for w in writes)  # nothing written about the CV
    assert not any(CV in (w["path"] + json.dumps(w["body"])) for w in skyportal.requests)
    paths = [(w["method"], w["path"]) for w in writes]
    assert paths.count(("POST", "/api/followup_request")) == 1
    assert paths.count(("POST", "/api/sources")) == 1

    source = sp_get(skyportal, f"/api/sources/{SN}")
    assert [g["id"] for g in source["groups"]] == [1001]
    reqs = sp_get(skyportal, "/api/followup_request", sourceID=SN)["followup_requests"]
    assert len(reqs) == 1 and reqs[0]["allocation_id"] == 2001 and "submitted" in reqs[0]["status"]
    assert reqs[0]["payload"]["priority"] == 3 and reqs[0]["payload"]["observation_type"] == "IFU"
    comments = sp_get(skyportal, f"/api/sources/{SN}/comments")
    texts = sorted(c["text"] for c in comments)
    (text,) = texts  # saved and triggered at the same alert: one comment says both
    assert "saved to group 1001 by bts_p1 — 2 alerts > 0.5" in text and text.endswith(f"candid {second['candid']}")
    assert "; SEDM follow-up requested (request " in text and ") by bts_p2 — " in text
    annotations = sp_get(skyportal, f"/api/sources/{SN}/annotations")
    assert len(annotations) == 1 and annotations[0]["origin"] == "btsbot"
    data = annotations[0]["data"]
    assert data["btsbot_model_version"] == "v1.0.1" and data["btsbot_n_counting_alerts"] >= 2
    assert 0.5 < data["btsbot_latest_score"] <= data["btsbot_max_score"] <= 1.0
    with pytest.raises(requests.HTTPError):
        r = requests.get(f"{skyportal.url}/api/sources/{CV}", headers={"Authorization": f"token {skyportal.token}"})
        r.raise_for_status()  # the CV was never written to Fritz: no such source

    # the same window again: nothing new, nothing acted twice
    n = len(skyportal.writes())
    assert run_once(config) == 0
    assert "0 new" in capsys.readouterr().out
    assert len(skyportal.writes()) == n


def test_dry_run_sends_no_write_and_journals_what_it_would(capsys, example_kowalski, skyportal, write_config):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    assert run_once(config) == 0
    assert skyportal.writes() == []
    capsys.readouterr()
    assert main(["journal", "--config", str(config), "--format", "json", "--kind", "actions"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["policy"], r["action"]) for r in rows} >= {("bts_p1", "save"), ("bts_p2", "followup")}
    assert {r["outcome"] for r in rows} == {"dry-run"}
    follow = next(r for r in rows if r["action"] == "followup")
    body = follow["response"]["would_send"]["body"]
    assert body["not_if_duplicates"] and body["radius"] == 0.5 and body["payload"]["priority"] == 3
    for key in ("objectId", "candid", "jd", "policy", "action", "outcome"):
        assert key in follow


def test_journal_shows_alerts_and_decisions(capsys, example_kowalski, skyportal, write_config):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    assert run_once(config) == 0
    capsys.readouterr()
    assert main(["journal", "--config", str(config), "--object", CV, "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["kind"] for r in rows} == {"alert"} and all(r["score"] < 0.01 for r in rows)
    assert main(["journal", "--config", str(config), "--kind", "decisions"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["time", "kind", "objectId"] and len(table) == 3
    assert all(SN in line for line in table[1:])


@pytest.mark.parametrize(
    "override, message",
    [
        ({"kowalski": {"hots": "x"}}, "kowalski.hots: unknown key"),
        ({"policies": [{"name": "p", "min_scor": 0.5}]}, "policies.0.min_scor: unknown key"),
        ({"policies": [{"name": "p", "actions": {"save": {"group_ids": [1003]}}}]}, "group 1003"),
        ({"policies": [{"name": "p", "actions": {"followup": {"allocation_id": 2002, "payload": {"priority": 3, "observation_type": "IFU"}}}}]}, "allocation 2002"),
        ({"policies": [{"name": "p", "actions": {"followup": {"allocation_id": 2001, "payload": {"priority": 9, "observation_type": "IFU"}}}}]}, "priority"),
        ({"skyportal": {"token": "00000000-0000-0000-0000-000000000000"}}, "refused"),
        ({"kowalski": {"token": "not-a-valid-token"}}, "refused the token"),
    ],
    ids=["unknown-key", "policy-typo", "group-not-member", "allocation-not-usable", "bad-sedm-payload",
         "bad-fritz-token", "bad-kowalski-token"],
)
def test_config_errors_fail_at_start_before_any_poll(capsys, example_kowalski, skyportal, write_config, override, message):
    config = write_config(example_kowalski, skyportal, **override)
    example_kowalski.reset_counts()
    assert run_once(config) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 3
    assert example_kowalski.request_counts.get("POST /api/queries", 0) <= 1  # at most the catalog check
    assert skyportal.writes() == []
    assert skyportal.token not in err and example_kowalski.token not in err


def test_bad_alerts_from_kowalski_are_journaled_and_lose_nothing(capsys, skyportal, write_config, example_packets):
    """A corrupt cutout and a null feature in Kowalski's answer: those alerts are unscorable, the rest acts."""
    import copy

    from bot.journal import Journal
    from bot.sim.kowalski import KowalskiSim

    packets = copy.deepcopy(example_packets)
    sn = [p for p in packets if p["objectId"] == SN]
    sn[2]["cutoutTemplate"]["stampData"] = b"not gzip"
    sn[3]["candidate"]["sgscore1"] = None
    with KowalskiSim() as kowalski:
        kowalski.load_alerts(packets)
        config = write_config(kowalski, skyportal)
        assert run_once(config) == 0
    out = capsys.readouterr().out
    assert "2 unscorable" in out and f"bts_p2 selects {SN}" in out
    with Journal(config.parent / "journal.sqlite") as journal:
        rows = {r["candid"]: r for r in journal.alerts_for_object(SN)}
    assert rows[sn[2]["candid"]]["status"] == "unscorable: cutoutTemplate: stamp is not gzip data"
    assert rows[sn[3]["candid"]]["status"] == "unscorable: candidate.sgscore1 is null"
    assert rows[sn[2]["candid"]]["score"] is None and rows[sn[1]["candid"]]["score"] > 0.5


def test_shadow_then_live_acts_once_on_sn_2023tyk(capsys, caplog, example_kowalski, skyportal, write_config,
                                                   example_packets):
    """Dry-run first (the SN is selected in shadow), then live on the same journal: the live run saves and
    requests SEDM for SN 2023tyk exactly once, at the SN's next alert."""
    import logging

    from bot.journal import Journal

    sn = sorted(p["candidate"]["jd"] for p in example_packets if p["objectId"] == SN)
    cut = str((sn[1] + sn[2]) / 2)  # after the decision (2nd alert), before the SN's 3rd alert
    dry = write_config(example_kowalski, skyportal, mode="dry-run")
    assert main(["run", "--once", "--config", str(dry), "--since", str(EXAMPLE_SINCE), "--until", cut]) == 0
    assert skyportal.writes() == []
    live = write_config(example_kowalski, skyportal, name="live.yaml")  # same journal.sqlite
    with caplog.at_level(logging.INFO, logger="bot.runtime.banner"):
        assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", str(EXAMPLE_UNTIL)]) == 0
    banner = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mode live")]
    assert banner and "2 dry-run decision(s) on 1 source(s)" in banner[0]
    paths = [(w["method"], w["path"]) for w in skyportal.writes()]
    assert paths.count(("POST", "/api/sources")) == 1 and paths.count(("POST", "/api/followup_request")) == 1
    assert len(sp_get(skyportal, "/api/followup_request", sourceID=SN)["followup_requests"]) == 1
    with Journal(live.parent / "journal.sqlite") as journal:
        modes = journal.mode_summary()
        d = journal.get_decision("bts_p2", SN)
        assert d["mode"] == "live" and journal.unfinished_actions() == []
        outcomes = {(a["key"], a["outcome"]) for a in journal.actions_for(d["id"])}
    assert ("followup", "posted") in outcomes and ("dry-run:followup", "dry-run") in outcomes  # both kept
    assert modes["decisions"] == {"live": 2}
    n = len(skyportal.writes())
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", str(EXAMPLE_UNTIL)]) == 0
    assert len(skyportal.writes()) == n  # live never acts twice
