"""One bot per journal: a second writer refuses to start naming the holder; a killed holder's lock is taken over."""

import json
import logging
import os
import subprocess
import sys

import pytest
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL

from bot.cli import EXIT_LOCKED, main
from bot.config import load_config
from bot.lock import JournalLocked, WriterLock, lock_path
from bot.runtime import open_runtime


def test_second_writer_refuses_and_writes_nothing(capsys, example_kowalski, skyportal, write_config, onnx_scorer):
    config = write_config(example_kowalski, skyportal)
    cfg = load_config(config)
    rt = open_runtime(cfg, scorer=onnx_scorer)  # the first writer (a daemon) holds the journal
    capsys.readouterr()  # the first writer's own start banner
    try:
        n_requests = len(example_kowalski.requests) if hasattr(example_kowalski, "requests") else None
        rc = main(["run", "--once", "--config", str(config), "--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)])
        err = capsys.readouterr().err.strip()
        assert rc == EXIT_LOCKED and len(err.splitlines()) == 1
        assert f"pid {os.getpid()}" in err and "in use by another btsbot writer" in err
        assert rt.journal.history() == []  # the refused writer journaled nothing
        assert skyportal.writes() == []
        if n_requests is not None:
            assert len(example_kowalski.requests) == n_requests  # nor polled
        # readers keep working while the writer runs
        assert main(["journal", "--journal", str(cfg.journal_path)]) == 0
    finally:
        rt.close()
    with WriterLock(cfg.journal_path):  # released on close: the next writer starts
        pass


def test_lock_of_a_killed_writer_is_taken_over(tmp_path, caplog):
    journal = tmp_path / "journal.sqlite"
    code = ("import sys, os, signal; from bot.lock import WriterLock; WriterLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(journal)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "held" in proc.stdout
    dead = json.loads(lock_path(journal).read_text())
    caplog.set_level(logging.WARNING, logger="bot.lock")
    with WriterLock(journal) as lock:
        assert lock.held
        assert any("took over" in r.message and f"pid {dead['pid']}" in r.message for r in caplog.records)
        assert json.loads(lock_path(journal).read_text())["pid"] == os.getpid()
        with pytest.raises(JournalLocked, match=f"pid {os.getpid()}"):
            WriterLock(journal).acquire()
    assert lock_path(journal).read_text() == ""  # a clean stop leaves nothing to take over
