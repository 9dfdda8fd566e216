"""The cycle in chunks (`kowalski.chunk_alerts`): the same journal as one chunk, a stop or a crash between
chunks keeps what was committed and loses or repeats nothing. Example night, local Kowalski, ONNX."""

import sqlite3
import threading

import pytest
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.cycle import run_cycle


@pytest.fixture
def make_runtime(example_runtimes, onnx_scorer):
    return lambda chunk, name: example_runtimes(name, onnx_scorer, chunk)


def cycle(rt, **kw):
    return run_cycle(rt, since_jd=EXAMPLE_SINCE, until_jd=EXAMPLE_UNTIL, **kw)


def journal(rt) -> dict:
    db = sqlite3.connect(rt.config.journal_path)
    try:
        return {
            "alerts": sorted(db.execute("SELECT candid, objectId, score, status FROM alerts").fetchall()),
            "decisions": sorted(db.execute("SELECT policy, objectId, candid FROM decisions").fetchall()),
            "actions": sorted(db.execute("SELECT d.policy, d.objectId, a.action, a.key FROM actions a "
                                         "JOIN decisions d ON d.id = a.decision_id").fetchall()),
        }
    finally:
        db.close()


def test_chunks_journal_what_one_chunk_does(make_runtime):
    whole = make_runtime(100000, "whole")
    one = cycle(whole)
    chunked = make_runtime(4, "chunked")
    many = cycle(chunked)
    assert one.n_chunks == 1 and many.n_chunks == -(-one.n_new // 4) > 3
    assert (many.n_found, many.n_new, many.n_scored) == (one.n_found, one.n_new, one.n_scored)
    assert many.unscorable == one.unscorable
    j1, j2 = journal(whole), journal(chunked)
    assert j1 == j2
    assert any(d[1] == SN for d in j2["decisions"])
    # one annotation per source acted on, however many chunks touched it
    annotations = [a for a in j2["actions"] if a[2] == "annotation"]
    assert len(annotations) == len({a[1] for a in annotations}) >= 1
    assert chunked.journal.owed_annotations() == []


def _new_keys(rt):
    """(jd, candid) of the alerts of the example window, in the order the poller chunks them."""
    db = sqlite3.connect(rt.config.journal_path)
    try:
        return sorted(db.execute("SELECT jd, candid FROM alerts").fetchall())
    finally:
        db.close()


def test_a_stopped_cycle_commits_its_chunks_and_the_next_takes_the_rest(make_runtime):
    reference = make_runtime(100000, "reference")
    cycle(reference)
    keys = _new_keys(reference)

    rt = make_runtime(5, "stopped")
    stop = threading.Event()
    stop.set()  # already set: the first chunk is finished and committed, then the cycle stops
    report = cycle(rt, stop=stop)
    assert report.n_chunks == 1 and report.n_new == 5
    assert [c for _, c in _new_keys(rt)] == [c for _, c in keys[:5]]
    assert rt.poller.cursor == keys[5][0]  # the first alert not committed
    again = cycle(rt)
    assert again.n_new == len(keys) - 5
    assert journal(rt)["alerts"] == journal(reference)["alerts"]
    assert journal(rt)["decisions"] == journal(reference)["decisions"]
    assert journal(rt)["actions"] == journal(reference)["actions"]


def test_a_crash_in_a_later_chunk_loses_and_repeats_nothing(make_runtime, monkeypatch):
    reference = make_runtime(100000, "reference")
    cycle(reference)

    rt = make_runtime(6, "crashed")
    score, calls = rt.scorer.score, []

    def crash_on_third(alerts, histories, **kw):
        calls.append(len(alerts))
        if len(calls) == 3:
            raise RuntimeError("killed while scoring the third chunk")
        return score(alerts, histories, **kw)

    monkeypatch.setattr(rt.scorer, "score", crash_on_third)
    with pytest.raises(RuntimeError, match="third chunk"):
        cycle(rt)
    assert len(journal(rt)["alerts"]) == 12  # two chunks committed, nothing of the third
    monkeypatch.setattr(rt.scorer, "score", score)
    cycle(rt)
    assert journal(rt) == journal(reference)
