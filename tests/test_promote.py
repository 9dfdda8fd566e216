"""`btsbot run --once --promote-dry-run`: going live acts on what the shadow selected, exactly once, without
waiting for the source's next alert (the local Kowalski with the example night, the local SkyPortal)."""

import copy

import pytest
import yaml
from conftest import EXAMPLE_SINCE, REPO, SN

from bot.cli import EXIT_OK, EXIT_PENDING, EXIT_USAGE, main
from bot.journal import Journal

OLD_ENOUGH = ["--max-age-days", "100000"]  # the example night is of 2023: every alert is older than 2 days


@pytest.fixture
def shadow(example_kowalski, skyportal, write_config, example_packets):
    """A dry-run journal that selected SN 2023tyk (both policies) at its 2nd alert, cut before its 3rd; the
    live window after the cut holds no alert of the SN. Returns (cut, after) as JD texts."""
    sn = sorted(p["candidate"]["jd"] for p in example_packets if p["objectId"] == SN)
    cut = (sn[1] + sn[2]) / 2
    dry = write_config(example_kowalski, skyportal, name="dry.yaml", mode="dry-run")
    assert main(["run", "--once", "--config", str(dry), "--since", str(EXAMPLE_SINCE), "--until", str(cut)]) == 0
    assert skyportal.writes() == []
    return str(cut), str(cut + 0.01)


def writes(skyportal):
    return [(w["method"], w["path"]) for w in skyportal.writes()]


def test_promotion_acts_live_once_without_a_new_alert(capsys, shadow, example_kowalski, skyportal, write_config):
    cut, after = shadow
    live = write_config(example_kowalski, skyportal, name="live.yaml")  # the same journal.sqlite
    capsys.readouterr()
    # going live without promotion: no alert of the SN in the window, so nothing happens to it
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after]) == EXIT_OK
    assert writes(skyportal) == []
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after, "--promote-dry-run",
                 *OLD_ENOUGH]) == EXIT_OK
    out = capsys.readouterr().out
    assert "promote: 2 of 2 dry-run decision(s) acted on live" in out
    assert f"promoted: bts_p1 {SN}" in out and f"promoted: bts_p2 {SN}" in out
    paths = writes(skyportal)
    assert paths.count(("POST", "/api/sources")) == 1 and paths.count(("POST", "/api/followup_request")) == 1
    assert paths.count(("POST", f"/api/sources/{SN}/annotations")) == 1
    with Journal(live.parent / "journal.sqlite") as journal:
        assert journal.mode_summary()["decisions"] == {"live": 2} and journal.dry_run_decisions() == []
        d = journal.get_decision("bts_p2", SN)
        assert d["evidence"]["promoted_from"]["jd"] == pytest.approx(d["jd"])  # decided again at the same alert
        outcomes = {(a["key"], a["outcome"]) for a in journal.actions_for(d["id"])}
        assert ("followup", "posted") in outcomes and ("dry-run:followup", "dry-run") in outcomes
        assert journal.unfinished_actions() == []
    n = len(skyportal.writes())
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after, "--promote-dry-run",
                 *OLD_ENOUGH]) == EXIT_OK
    assert "promote: 0 of 0 dry-run decision(s)" in capsys.readouterr().out
    assert len(skyportal.writes()) == n  # exactly once


def test_too_old_and_tightened_policies_are_not_promoted(capsys, shadow, example_kowalski, skyportal,
                                                         write_config):
    cut, after = shadow
    live = write_config(example_kowalski, skyportal, name="live.yaml")
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after,
                 "--promote-dry-run"]) == EXIT_OK  # the default: 2 days
    out = capsys.readouterr().out
    assert "promote: 0 of 2" in out and f"too old: bts_p1 {SN}" in out and "d old (--max-age-days 2)" in out
    assert writes(skyportal) == []

    defaults = yaml.safe_load((REPO / "config" / "config.defaults.yaml").read_text())["policies"]
    tight = copy.deepcopy(defaults)
    tight[1]["min_score"] = 0.999  # bts_p2 no longer holds for the SN
    strict = write_config(example_kowalski, skyportal, name="strict.yaml", policies=tight)
    assert main(["run", "--once", "--config", str(strict), "--since", cut, "--until", after, "--promote-dry-run",
                 *OLD_ENOUGH]) == EXIT_OK
    out = capsys.readouterr().out
    assert "promote: 1 of 2" in out and f"promoted: bts_p1 {SN}" in out
    assert f"no longer holds: bts_p2 {SN}" in out and "no counting alert (max score" in out  # bot.core.reasons
    paths = writes(skyportal)
    assert paths.count(("POST", "/api/sources")) == 1 and ("POST", "/api/followup_request") not in paths
    with Journal(strict.parent / "journal.sqlite") as journal:
        assert journal.get_decision("bts_p2", SN)["mode"] == "dry-run"  # left in shadow, as it was


def test_a_failing_fritz_keeps_the_promoted_actions_pending_and_the_next_run_finishes_them(
        capsys, shadow, example_kowalski, skyportal, write_config):
    cut, after = shadow
    live = write_config(example_kowalski, skyportal, name="live.yaml", skyportal={"max_retries": 0})
    skyportal.faults.push(*["503"] * 1000, match="POST /api/sources")
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after, "--promote-dry-run",
                 *OLD_ENOUGH]) == EXIT_PENDING
    assert ("POST", "/api/followup_request") not in writes(skyportal)  # the request waits for the save
    skyportal.faults.clear()
    skyportal.clear_requests()
    # the next run, promotion or not, runs what the promotion journaled; nothing is promoted twice
    assert main(["run", "--once", "--config", str(live), "--since", cut, "--until", after]) == EXIT_OK
    paths = writes(skyportal)
    assert paths.count(("POST", "/api/sources")) == 1 and paths.count(("POST", "/api/followup_request")) == 1
    with Journal(live.parent / "journal.sqlite") as journal:
        assert journal.unfinished_actions() == [] and journal.dry_run_decisions() == []


@pytest.mark.parametrize("extra, message", [
    (["--promote-dry-run"], "it needs mode: live"),
    (["--max-age-days", "3"], "--max-age-days goes with --promote-dry-run"),
    (["--promote-dry-run", "--mode", "live", "--max-age-days", "0"], "--max-age-days must be > 0"),
])
def test_promotion_usage_errors(capsys, example_kowalski, skyportal, write_config, extra, message):
    dry = write_config(example_kowalski, skyportal, mode="dry-run")
    assert main(["run", "--once", "--config", str(dry), *extra]) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert main(["run", "--config", str(dry), "--promote-dry-run", "--mode", "live"]) == EXIT_USAGE
    assert "is for run --once" in capsys.readouterr().err
