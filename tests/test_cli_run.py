"""`btsbot run` for a supervisor: exit codes, strict --since/--until, a 10-second stop on SIGTERM."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.cli import EXIT_PENDING, EXIT_USAGE, main
from bot.journal import Journal

WINDOW = ["--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)]


@pytest.mark.parametrize("value, message", [
    ("60222", "mjd:60222"), ("-5", "not a plausible JD"), ("yesterday", "is not an ISO date"),
    ("2090-06-01", "in the future")])
def test_bad_times_are_usage_errors(capsys, value, message):
    with pytest.raises(SystemExit) as info:
        rc = main(["run", "--once", "--since", value])
        raise SystemExit(rc)
    assert info.value.code == EXIT_USAGE and message in capsys.readouterr().err


def test_reversed_window_and_mjd(capsys, example_kowalski, skyportal, write_config):
    config = write_config(example_kowalski, skyportal, mode="dry-run")
    assert main(["run", "--once", "--config", str(config), "--since", "2023-10-06", "--until", "2023-10-05"]) == EXIT_USAGE
    assert "must be before --until" in capsys.readouterr().err
    assert main(["run", "--once", "--config", str(config), "--since", f"mjd:{EXAMPLE_SINCE - 2400000.5}",
                 "--until", str(EXAMPLE_UNTIL)]) == 0
    assert f"{EXAMPLE_SINCE:.5f}" in capsys.readouterr().out


def test_pending_actions_give_their_own_exit_code(capsys, example_kowalski, skyportal, write_config):
    config = write_config(example_kowalski, skyportal, skyportal={"max_retries": 0})
    skyportal.faults.push(*["503"] * 1000, match="POST /api/sources")  # Fritz refuses saves for now
    assert main(["run", "--once", "--config", str(config), *WINDOW]) == EXIT_PENDING
    assert "actions remain pending" in capsys.readouterr().err
    skyportal.faults.clear()
    assert main(["run", "--once", "--config", str(config), *WINDOW]) == 0


def test_missing_credentials_same_code_for_kowalski_and_fritz(capsys, example_kowalski, skyportal, write_config,
                                                             monkeypatch):
    monkeypatch.delenv("KOWALSKI_TOKEN", raising=False)
    monkeypatch.delenv("FRITZ_TOKEN", raising=False)
    no_k = write_config(example_kowalski, skyportal, name="k.yaml", kowalski={"token": None})
    no_f = write_config(example_kowalski, skyportal, name="f.yaml", skyportal={"token": None})
    assert main(["run", "--once", "--config", str(no_k), *WINDOW]) == EXIT_USAGE
    assert "KOWALSKI_TOKEN / kowalski.token" in capsys.readouterr().err
    assert main(["run", "--once", "--config", str(no_f), *WINDOW]) == EXIT_USAGE
    assert "FRITZ_TOKEN / skyportal.token" in capsys.readouterr().err


def test_token_with_the_word_token_and_unwritable_state_path(capsys, example_kowalski, skyportal, write_config,
                                                             tmp_path):
    bad = write_config(example_kowalski, skyportal, name="t.yaml", skyportal={"token": "mytoken123"})
    assert main(["run", "--once", "--config", str(bad), *WINDOW]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "FRITZ_TOKEN / skyportal.token" in err and "'token'" in err
    blocker = tmp_path / "a-file"  # a state.path below a regular file cannot be created, even by root
    blocker.write_text("not a directory")
    unwritable = write_config(example_kowalski, skyportal, name="s.yaml", state={"path": str(blocker / "j.sqlite")})
    assert main(["run", "--once", "--config", str(unwritable), *WINDOW]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("btsbot: state.path")


def test_sigterm_during_a_long_action_phase(example_kowalski, skyportal, write_config, tmp_path):
    skyportal.faults.latency_s = 1.0  # each Fritz request takes a second: a long action phase
    config = write_config(example_kowalski, skyportal)
    cmd = [sys.executable, "-m", "bot.cli", "run", "--once", "--config", str(config), *WINDOW]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not skyportal.writes():  # the first write to Fritz is in flight
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    stopped_after = time.monotonic() - t0
    assert proc.returncode == 0, err
    assert stopped_after < 10
    journal_path = tmp_path / "journal.sqlite"
    with Journal(journal_path) as journal:
        left = journal.unfinished_actions()
    assert left, "the stop left the rest pending"
    skyportal.faults.latency_s = 0.0
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    with Journal(journal_path) as journal:
        assert journal.unfinished_actions() == []
    posts = [r for r in skyportal.requests if r["method"] == "POST" and r["path"] == "/api/followup_request"]
    assert len(posts) == 1
    comments = [r for r in skyportal.requests if r["method"] == "POST" and r["path"] == f"/api/sources/{SN}/comments"]
    texts = [r["body"]["text"] for r in comments if r["status"] == 200]
    assert len(texts) == len(set(texts))  # no comment stored twice
