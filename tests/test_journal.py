"""Tests of bot.journal: the SQLite journal of alerts, decisions and actions."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading

import pytest

from bot.journal import SCHEMA_VERSION, Journal, scrub

BIG = 2**60 + 12345  # candids exceed 2**53: a float would round this


def alert(candid, object_id="ZTF24aaaaaaa", jd=2460000.5, score=0.9, model_version="v1", status="ok", **kw):
    return dict(candid=candid, objectId=object_id, jd=jd, score=score, model_version=model_version,
                status=status, **kw)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "journal.sqlite")


@pytest.fixture
def j(path):
    with Journal(path) as journal:
        yield journal


def fake_clock():
    """Strictly increasing UTC ISO timestamps, so that ordering by time is deterministic."""
    counter = itertools.count()
    return lambda: f"2024-11-25T00:00:{next(counter):02d}.000000Z"


def test_schema_version_and_wal(path):
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION
        assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Journal(path) as j:  # reopening does not add a version row
        assert j._conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_refuses_newer_schema(path):
    with Journal(path) as j:
        j._conn.execute("INSERT INTO schema_version VALUES (?, 'x')", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="schema version"):
        Journal(path)


def test_memory_journal():
    with Journal(":memory:") as j:
        assert j.record_alerts([alert(1)]) == 1
        assert j.known_candids([1, 2]) == {1}


def get_action(j, action_id):
    rows = [a for a in j.history(kind="actions") if a["id"] == action_id]
    if not rows:
        raise KeyError(action_id)
    return rows[0]


def count(j, kind):
    return len(j.history(kind=kind))


def test_record_alerts_idempotent_updates_score_and_status(j):
    j.record_alerts([alert(1, score=0.1, magpsf=18.0, extra={"fid": 1}), alert(2)])
    j.record_alerts([alert(1, score=0.7, status="unscorable: no cutouts")])
    rows = j.alerts_for_object("ZTF24aaaaaaa")
    assert len(rows) == 2
    first = next(r for r in rows if r["candid"] == 1)
    assert first["score"] == 0.7 and first["status"] == "unscorable: no cutouts"
    assert first["magpsf"] == 18.0 and first["extra"] == {"fid": 1}  # optional fields kept
    assert first["updated"] is not None
    # another model version is another row
    j.record_alerts([alert(1, model_version="v2", score=None)])
    assert len(j.alerts_for_object("ZTF24aaaaaaa")) == 3
    assert [r["candid"] for r in j.alerts_for_object("ZTF24aaaaaaa", model_version="v2")] == [1]
    assert count(j, "alerts") == 3


def test_big_candid_round_trips_exactly(j, path):
    np = pytest.importorskip("numpy")
    j.record_alerts([alert(BIG), alert(np.int64(BIG + 1), score=np.float32(0.5))])
    got = sorted(r["candid"] for r in j.alerts_for_object("ZTF24aaaaaaa"))
    assert got == [BIG, BIG + 1] and all(type(c) is int for c in got)
    assert j.known_candids([BIG, np.int64(BIG + 1), str(BIG + 2)]) == {BIG, BIG + 1}
    with pytest.raises(TypeError):
        j.known_candids([float(BIG)])
    assert j._conn.execute("SELECT typeof(candid) FROM alerts LIMIT 1").fetchone()[0] == "integer"
    did, _ = j.record_decision("p", "ZTF24aaaaaaa", BIG, 2460000.5, {})
    assert j.get_decision("p", "ZTF24aaaaaaa")["candid"] == BIG


def test_float_candid_rejected(j):
    with pytest.raises(TypeError, match="candid"):
        j.record_alerts([alert(float(BIG))])
    with pytest.raises(KeyError, match="jd"):
        j.record_alerts([{"candid": 1, "objectId": "x", "model_version": "v1", "status": "ok", "score": 1}])
    assert count(j, "alerts") == 0


def test_bad_row_records_nothing(j):
    with pytest.raises(ValueError):
        j.record_alerts([alert(1), alert(2), alert(3, status=None)])
    assert j.known_candids([1, 2, 3]) == set()


def test_known_candids(j):
    j.record_alerts([alert(c) for c in range(1, 2001)])
    j.record_alerts([alert(5000, model_version="v2")])
    asked = list(range(1500, 2600)) + [5000]  # more than one chunk of the IN (...) query
    assert j.known_candids(asked) == set(range(1500, 2001)) | {5000}
    assert j.known_candids([]) == set()


def test_alerts_for_object_in_jd_order(j):
    j.record_alerts([alert(3, jd=2460003.5), alert(1, jd=2460001.5), alert(9, object_id="other"),
                     alert(2, jd=2460002.5)])
    assert [r["candid"] for r in j.alerts_for_object("ZTF24aaaaaaa")] == [1, 2, 3]
    assert j.alerts_for_object("nobody") == []


def test_state(j, path):
    assert j.get_state("cursor") is None
    j.set_state("cursor", "2460000.5")
    j.set_state("cursor", "2460001.5")
    assert j.get_state("cursor") == "2460001.5"
    with pytest.raises(TypeError):
        j.set_state("cursor", 2460001.5)
    j.close()
    with Journal(path) as j2:
        assert j2.get_state("cursor") == "2460001.5"


def test_record_decision_idempotent(j):
    did, created = j.record_decision("bts_save", "ZTF1", 11, 2460000.5, {"score": 0.9})
    assert created
    did2, created2 = j.record_decision("bts_save", "ZTF1", 12, 2460001.5, {"score": 0.95})
    assert (did2, created2) == (did, False)
    d = j.get_decision("bts_save", "ZTF1")
    assert d["id"] == did and d["candid"] == 11 and d["evidence"] == {"score": 0.9}  # first one kept
    assert j.get_decision("bts_save", "ZTF2") is None
    other, created3 = j.record_decision("other_policy", "ZTF1", 11, 2460000.5, {})
    assert created3 and other != did
    assert j.get_decision_by_id(other)["policy"] == "other_policy"


def test_start_action_idempotent_with_key(j):
    did, _ = j.record_decision("bts_save", "ZTF1", 11, 2460000.5, {})
    a1 = j.start_action(did, "save", {"group_ids": [1]}, key="group:1")
    assert j.start_action(did, "save", {"group_ids": [1]}, key="group:1") == a1
    a2 = j.start_action(did, "save", {"group_ids": [2]}, key="group:2")
    assert a2 != a1
    c1 = j.start_action(did, "comment", {"text": "hi"})
    assert j.start_action(did, "comment", {"text": "hi again"}) == c1  # key=None is a key too
    assert get_action(j, c1)["request"] == {"text": "hi"}  # the first request is kept
    assert [a["id"] for a in j.actions_for(did)] == [a1, a2, c1]
    assert get_action(j, a1)["key"] == "group:1" and get_action(j, c1)["key"] is None


def test_action_lifecycle(j):
    did, _ = j.record_decision("bts_save", "ZTF1", BIG, 2460000.5, {})
    aid = j.start_action(did, "save", {"group_ids": [1]})
    a = get_action(j, aid)
    assert a["status"] == "pending" and a["outcome"] is None and a["finished"] is None
    assert (a["policy"], a["objectId"], a["candid"]) == ("bts_save", "ZTF1", BIG)
    j.finish_action(aid, "failed", error="HTTP 500")
    a = get_action(j, aid)
    assert (a["status"], a["outcome"], a["error"]) == ("done", "failed", "HTTP 500") and a["finished"]
    aid = j.start_action(did, "save", {"group_ids": [1]}, key="again")
    j.note_attempt(aid, "HTTP 503")
    a = get_action(j, aid)
    assert (a["status"], a["attempts"], a["outcome"], a["error"]) == ("pending", 2, None, "HTTP 503")
    j.finish_action(aid, "saved", response={"status": "success", "data": {"id": 7}})
    a = get_action(j, aid)
    assert a["outcome"] == "saved" and a["response"] == {"status": "success", "data": {"id": 7}}
    with pytest.raises(KeyError):
        j.finish_action(9999, "saved")
    with pytest.raises(KeyError):
        get_action(j, 9999)


def test_unfinished_actions_survive_restart(path):
    j = Journal(path)
    did, _ = j.record_decision("bts_save", "ZTF1", BIG, 2460000.5, {"score": 0.9})
    done = j.start_action(did, "save", {"group_ids": [1]})
    j.finish_action(done, "saved")
    pending = j.start_action(did, "followup", {"allocation_id": 3}, key="sedm")
    # no close(): the bot "crashed" with the follow-up in flight; what was committed is on disk
    with Journal(path) as j:
        unfinished = j.unfinished_actions()
        assert [a["id"] for a in unfinished] == [pending]
        a = unfinished[0]
        assert (a["policy"], a["objectId"], a["candid"], a["action"], a["key"]) == (
            "bts_save", "ZTF1", BIG, "followup", "sedm")
        assert a["request"] == {"allocation_id": 3}
        assert j.start_action(did, "followup", {"allocation_id": 3}, key="sedm") == pending
        j.finish_action(pending, "posted")
        assert j.unfinished_actions() == []


def test_transaction_rollback_leaves_nothing(j):
    with pytest.raises(RuntimeError):
        with j.transaction():
            j.record_alerts([alert(1)])
            did, _ = j.record_decision("p", "ZTF1", 1, 2460000.5, {})
            j.start_action(did, "save", {})
            j.set_state("cursor", "x")
            raise RuntimeError("boom")
    assert j.known_candids([1]) == set()
    assert j.get_decision("p", "ZTF1") is None
    assert j.unfinished_actions() == [] and j.get_state("cursor") is None
    # a nested block that fails and is caught undoes only itself
    with j.transaction():
        j.record_alerts([alert(1)])
        with pytest.raises(RuntimeError):
            with j.transaction():
                j.record_alerts([alert(2)])
                raise RuntimeError("inner")
        j.record_alerts([alert(3)])
    assert j.known_candids([1, 2, 3]) == {1, 3}


def test_transaction_commits_atomically(path):
    with Journal(path) as j:
        with j.transaction():
            did, created = j.record_decision("p", "ZTF1", 1, 2460000.5, {})
            j.start_action(did, "save", {})
    with Journal(path) as j:
        assert len(j.unfinished_actions()) == 1


def test_secrets_scrubbed(j):
    did, _ = j.record_decision("p", "ZTF1", 1, 2460000.5, {"api_token": "abc"})
    request = {
        "url": "https://fritz.science/api/sources?token=s3cr3t-value&page=1",
        "headers": {"Authorization": "token 0123abcd-4567-89ef", "Content-Type": "application/json"},
        "auth": {"nested": [{"PASSWORD": "hunter2", "user": "bot"}], "client_Secret": {"x": 1}},
        "Token": None,
    }
    aid = j.start_action(did, "save", request)
    j.finish_action(aid, "saved", response={"data": {"access_token": "zzz", "id": 3}},
                    error="401 for url https://x/api?token=0123456789abcdef (Authorization: token 0123abcd-4567)")
    raw = j._conn.execute("SELECT request, response, error FROM actions").fetchone()
    text = " ".join(raw) + j._conn.execute("SELECT evidence FROM decisions").fetchone()[0]
    for secret in ("s3cr3t-value", "0123abcd", "hunter2", "zzz", "0123456789abcdef", '"abc"'):
        assert secret not in text
    a = get_action(j, aid)
    assert a["request"]["headers"] == {"Authorization": "***", "Content-Type": "application/json"}
    assert a["request"]["auth"]["nested"] == [{"PASSWORD": "***", "user": "bot"}]
    assert a["request"]["auth"]["client_Secret"] == "***" and a["request"]["Token"] == "***"
    assert a["request"]["url"] == "https://fritz.science/api/sources?token=***&page=1"
    assert a["response"] == {"data": {"access_token": "***", "id": 3}}
    assert request["headers"]["Authorization"].startswith("token 0123")  # the caller's dict is untouched
    assert scrub({"comment": "token expired"}) == {"comment": "token expired"}  # ordinary words stay


def test_history_filters_and_order(path):
    with Journal(path, clock=fake_clock()) as j:
        j.record_alerts([alert(1, object_id="A", jd=2460001.5), alert(2, object_id="B", jd=2460002.5)])
        did, _ = j.record_decision("bts_save", "A", 1, 2460001.5, {"score": 0.9})
        aid = j.start_action(did, "save", {"group_ids": [1]})
        j.finish_action(aid, "saved", {"ok": True})
        j.record_alerts([alert(3, object_id="A", jd=2460003.5, score=0.2)])

        h = j.history()
        assert [e["kind"] for e in h] == ["alert", "alert", "decision", "action", "alert"]
        assert [e["time"] for e in h] == sorted(e["time"] for e in h)
        keys = {"kind", "objectId", "candid", "jd", "policy", "action", "outcome", "score",
                "model_version", "status", "time", "request", "response"}
        assert all(keys <= set(e) for e in h)
        act = h[3]
        assert (act["objectId"], act["candid"], act["policy"], act["action"], act["outcome"]) == (
            "A", 1, "bts_save", "save", "saved")
        assert act["request"] == {"group_ids": [1]} and act["response"] == {"ok": True}

        assert {e["objectId"] for e in j.history(object_id="A")} == {"A"}
        assert len(j.history(object_id="A")) == 4
        assert [e["candid"] for e in j.history(since_jd=2460002.5)] == [2, 3]
        assert [e["kind"] for e in j.history(since_jd=2460001.5, until_jd=2460002.5)] == [
            "alert", "decision", "action"]
        assert [e["candid"] for e in j.history(kind="alerts")] == [1, 2, 3]
        assert [e["kind"] for e in j.history(kind="decisions")] == ["decision"]
        assert [e["kind"] for e in j.history(kind="actions", object_id="B")] == []
        assert [e["kind"] for e in j.history(limit=2)] == ["action", "alert"]  # the most recent two
        assert j.history(limit=0) == []
        with pytest.raises(ValueError):
            j.history(kind="nonsense")


def test_timestamps_are_utc_iso(j):
    from datetime import datetime, timezone

    j.record_alerts([alert(1)])
    t = datetime.fromisoformat(j.alerts_for_object("ZTF24aaaaaaa")[0]["time"])
    assert t.tzinfo is not None and t.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - t).total_seconds()) < 60


def test_two_threads_write_concurrently(path):
    errors = []
    with Journal(path) as j:
        def scanner():
            try:
                for batch in range(20):
                    j.record_alerts([alert(batch * 100 + i, object_id=f"ZTF{i % 7}") for i in range(100)])
                    with j.transaction():
                        did, _ = j.record_decision("p", f"ZTF{batch}", batch, 2460000.5, {})
                        aid = j.start_action(did, "save", {"b": batch})
                        j.finish_action(aid, "saved")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def other():
            try:
                for i in range(200):
                    j.set_state(f"k{i % 5}", str(i))
                    j.known_candids(range(0, 2000, 10))
                    j.history(object_id="ZTF3", limit=5)
                    did, _ = j.record_decision("q", f"ZTF{i}", i, 2460000.5, {})
                    j.start_action(did, "comment", {"i": i})
            except Exception as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=scanner), threading.Thread(target=other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert (count(j, "alerts"), count(j, "decisions"), count(j, "actions")) == (2000, 220, 220)
        assert len(j.unfinished_actions()) == 200
        assert j.unfinished_actions()[0]["policy"] == "q"
        assert j._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_connections_on_one_file(path):
    """The daemon and `btsbot journal` may open the same file from two processes (WAL)."""
    with Journal(path) as writer, Journal(path) as reader:
        writer.record_alerts([alert(1)])
        assert reader.known_candids([1]) == {1}
        with writer.transaction():
            writer.record_alerts([alert(2)])
            assert reader.known_candids([2]) == set()  # not committed yet, reader not blocked
        assert reader.known_candids([2]) == {2}


def test_closed_journal_raises(path):
    j = Journal(path)
    j.close()
    j.close()  # twice is fine
    with pytest.raises(sqlite3.ProgrammingError):
        j.record_alerts([alert(1)])
    with pytest.raises(sqlite3.ProgrammingError):
        j.get_state("x")


def test_extra_json_and_numpy(j):
    np = pytest.importorskip("numpy")
    j.record_alerts([alert(1, extra={"ra": np.float64(10.5), "fid": np.int32(2), "arr": np.arange(2)},
                           drb=np.float32(0.99))])
    row = j.alerts_for_object("ZTF24aaaaaaa")[0]
    assert row["extra"] == {"ra": 10.5, "fid": 2, "arr": [0, 1]}
    assert row["drb"] == pytest.approx(0.99)
    json.dumps(row)  # rows are plain JSON-able dicts


def test_modes_are_recorded_and_old_rows_migrated(path):
    with Journal(path) as j:
        did, _ = j.record_decision("p", "ZTF1", 1, 2460000.5, {}, mode="dry-run")
        j.finish_action(j.start_action(did, "save", {}, mode="dry-run"), "dry-run")
        live, _ = j.record_decision("q", "ZTF1", 1, 2460000.5, {}, mode="live")
        j.finish_action(j.start_action(live, "save", {}, mode="live"), "saved")
        pending = j.start_action(live, "comment", {}, mode="live")
        for table in ("actions", "decisions"):  # a journal written before modes were recorded (version 1)
            j._conn.execute(f"ALTER TABLE {table} DROP COLUMN mode")
        j._conn.execute("UPDATE schema_version SET version = 1")
    with Journal(path, mode="live") as j:
        assert j.get_decision("p", "ZTF1")["mode"] == "dry-run" and j.get_decision("q", "ZTF1")["mode"] == "live"
        assert [a["mode"] for a in j.actions_for(did)] == ["dry-run"]
        assert [(a["id"], a["mode"]) for a in j.unfinished_actions()] == [(pending, None)]
        assert not j.decided("p", "ZTF1") and j.decided("p", "ZTF1", "dry-run") and j.decided("q", "ZTF1")
        assert j.mode_summary()["decisions"] == {"dry-run": 1, "live": 1}
        # live takes the dry-run decision over; its dry-run action is kept aside
        assert j.record_decision("p", "ZTF1", 2, 2460001.5, {"n": 2}) == (did, True)
        assert j.decided("p", "ZTF1") and j.get_decision("p", "ZTF1")["candid"] == 2
        assert [a["key"] for a in j.actions_for(did)] == ["dry-run:"]
        assert j.start_action(did, "save", {}) != j.actions_for(did)[0]["id"]


def test_a_version_1_journal_is_migrated_once_and_a_new_one_needs_no_step(path, tmp_path):
    import sqlite3

    from bot.journal import MIGRATIONS

    v1 = tmp_path / "v1.sqlite"  # the tables as version 1 created them
    con = sqlite3.connect(v1)
    con.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL);
        INSERT INTO schema_version VALUES (1, '2025-01-01T00:00:00Z');
        CREATE TABLE alerts (id INTEGER PRIMARY KEY, candid INTEGER NOT NULL, model_version TEXT NOT NULL,
            objectId TEXT NOT NULL, jd REAL NOT NULL, score REAL, status TEXT NOT NULL, magpsf REAL,
            peakmag_so_far REAL, age REAL, drb REAL, extra TEXT, time TEXT NOT NULL, updated TEXT,
            UNIQUE (candid, model_version));
        CREATE TABLE decisions (id INTEGER PRIMARY KEY, policy TEXT NOT NULL, objectId TEXT NOT NULL, candid INTEGER,
            jd REAL, evidence TEXT, time TEXT NOT NULL, UNIQUE (policy, objectId));
        CREATE TABLE actions (id INTEGER PRIMARY KEY, decision_id INTEGER NOT NULL REFERENCES decisions (id),
            action TEXT NOT NULL, key TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, outcome TEXT, request TEXT,
            response TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 1, time TEXT NOT NULL, finished TEXT,
            UNIQUE (decision_id, action, key));
        CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL);
        INSERT INTO decisions VALUES (1, 'p', 'ZTF1', 1, 2460000.5, '{}', '2025-01-01T00:00:00Z');
        INSERT INTO actions (id, decision_id, action, status, outcome, time) VALUES (1, 1, 'save', 'done', 'saved', 'x');
    """)
    con.close()
    calls = []
    step = MIGRATIONS[2]
    MIGRATIONS[2] = lambda j: (calls.append(j.path), step(j))
    try:
        with Journal(v1) as j:
            assert j.schema_version == SCHEMA_VERSION and j.get_decision("p", "ZTF1")["mode"] == "live"
            j.record_alerts([alert(5, source="boom", broker_score=0.5, precision="fp32")])
            assert j.alerts_for_object("ZTF24aaaaaaa")[0]["source"] == "boom"
        with Journal(v1) as j:  # once: the version says it is done
            assert j.schema_version == SCHEMA_VERSION
        with Journal(path) as j:  # a new journal is created as the tables are now: no step to run
            cols = {r[1] for r in j._conn.execute("PRAGMA table_info(alerts)")}
            assert {"precision", "source", "broker_score", "broker_model"} <= cols
    finally:
        MIGRATIONS[2] = step
    assert calls == [str(v1)]
