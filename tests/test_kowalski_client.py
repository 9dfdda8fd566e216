"""The bot's Kowalski client (penquins 2.4.2 wrapper) against the local Kowalski stand-in."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from bot.kowalski import queries as Q
from bot.kowalski.client import KowalskiClient, KowalskiError, is_transient_message
from bot.sim.kowalski import KowalskiSim

ALERT_DIR = Path(__file__).resolve().parents[2] / "shared" / "alerts" / "ztf"

pytestmark = pytest.mark.usefixtures("alerts_dir")  # fails, as conftest does, when ../shared is missing


@pytest.fixture(scope="module")
def sim():
    with KowalskiSim(users={"admin": "admin"}) as s:
        assert s.load_paths([ALERT_DIR]) == 36
        yield s


@pytest.fixture
def faults(sim):
    yield sim.faults
    sim.faults.clear()
    sim.faults.retry_after_s, sim.faults.hang_s = 1.0, 30.0


class Sleeps(list):
    def __call__(self, s: float) -> None:
        self.append(s)


def make(sim: KowalskiSim, **kw) -> KowalskiClient:
    if "username" not in kw:
        kw.setdefault("token", sim.token)
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("max_time_ms", 4000)
    return KowalskiClient(protocol="http", host=sim.host, port=sim.port, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- connection -----------------------------------------------------------------------------------
def test_connect_with_token(sim):
    k = make(sim).connect()
    assert set(k.catalogs) >= {"ZTF_alerts", "ZTF_alerts_aux"}
    assert k.requests == 2  # catalog_names + ping
    assert k.ping()
    assert sim.token not in repr(k)
    k.close()


def test_connect_with_username_password(sim):
    k = make(sim, username="admin", password="admin").connect()
    assert k.find("ZTF_alerts", {"candid": {"$lt": 0}}, limit=1) == []
    k.close()


def test_token_from_environment(sim, monkeypatch):
    monkeypatch.setenv("KOWALSKI_TOKEN", sim.token)
    k = KowalskiClient(protocol="http", host=sim.host, port=sim.port, timeout_s=5, max_time_ms=4000).connect()
    assert k.find("ZTF_alerts", {"candid": 1105522281015015000}, {"_id": 0, "candid": 1}) == \
        [{"candid": 1105522281015015000}]


def test_missing_credentials(monkeypatch):
    monkeypatch.delenv("KOWALSKI_TOKEN", raising=False)
    with pytest.raises(KowalskiError, match="credentials"):
        KowalskiClient()


def test_bad_token_is_reported_without_leaking_it(sim, caplog):
    bad = "eyJhbGciOiJIUzI1NiJ9.bm90LWEtdG9rZW4.c2VjcmV0LXNpZ25hdHVyZQ"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KowalskiError) as ei:
        make(sim, token=bad).connect()
    msg = str(ei.value)
    assert "refused the token" in msg and "empty catalog list" in msg
    assert bad not in msg and bad not in caplog.text
    assert not ei.value.transient


def test_wrong_password(sim):
    with pytest.raises(KowalskiError, match="refused the username/password") as ei:
        make(sim, username="admin", password="nope-secret").connect()
    assert "nope-secret" not in str(ei.value)


def test_unreachable_host():
    sleeps = Sleeps()
    port = free_port()
    k = KowalskiClient(protocol="http", host="127.0.0.1", port=port, token="t0ken-secret", retries=2,
                       timeout_s=2, max_time_ms=1000, sleep=sleeps)
    with pytest.raises(KowalskiError) as ei:
        k.connect()
    msg = str(ei.value)
    # connecting retries once only (an unreachable Kowalski is said in seconds at start); queries use `retries`
    assert f"cannot reach Kowalski at http://127.0.0.1:{port}" in msg and "gave up after 2 attempts" in msg
    assert "t0ken-secret" not in msg
    assert sleeps == [1.0]


def test_max_time_ms_must_be_below_the_timeout():
    with pytest.raises(ValueError, match="max_time_ms"):
        KowalskiClient(token="x", timeout_s=5, max_time_ms=5000)
    KowalskiClient(token="x", timeout_s=5, max_time_ms=4999)


def test_missing_catalog(sim):
    k = make(sim)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bot.kowalski.client.REQUIRED_CATALOGS", ("ZTF_alerts", "ZTF_alerts_aux", "PGIR_alerts"))
        with pytest.raises(KowalskiError, match="does not serve PGIR_alerts"):
            k.connect()


def test_ping_failure_at_connect(sim, faults):
    faults.push("503", "503", "503", "503", match="GET /")
    with pytest.raises(KowalskiError, match="did not answer ping"):
        make(sim, retries=1).connect()


# ---- queries ----------------------------------------------------------------------------------------
def test_find_aggregate_and_kwargs(sim):
    k = make(sim).connect()
    docs = k.find("ZTF_alerts", {"candidate.jd": {"$gt": 2460000}}, {"_id": 0, "candid": 1, "candidate.jd": 1},
                  sort=[("candid", -1)], limit=3, skip=1)
    assert len(docs) == 3 and [d["candid"] for d in docs] == sorted((d["candid"] for d in docs), reverse=True)
    assert all(isinstance(d["candid"], int) and d["candid"] > 2**53 for d in docs)  # int64 kept exact
    agg = k.aggregate("ZTF_alerts", [{"$match": {"objectId": "ZTF20aajcdad"}}, {"$project": {"_id": 0, "candid": 1}}])
    assert sorted(d["candid"] for d in agg) == [1127495406315015005, 1127536316315015004]


def test_query_error_is_raised_at_once(sim):
    k = make(sim).connect()
    before = sim.request_count
    with pytest.raises(KowalskiError, match="OperationFailure") as ei:  # mixed inclusion/exclusion: HTTP 400
        k.find("ZTF_alerts", {"candid": {"$gt": 0}}, {"candid": 1, "cutoutScience": 0})
    assert not ei.value.transient
    assert sim.request_count - before == 1  # not retried
    assert k._sleep == []


def test_unknown_catalog_is_refused_client_side(sim):
    k = make(sim).connect()
    with pytest.raises(KowalskiError, match="not available"):
        k.find("PGIR_alerts", {})


def test_transient_500_is_retried_and_succeeds(sim, faults):
    k = make(sim).connect()
    before_server, before_client = sim.request_count, k.requests
    # penquins retries once by itself (urllib3), then our loop retries with backoff
    faults.push("500", "500", "500", match="POST /api/queries")
    docs = k.find("ZTF_alerts", {"candid": 1105522281015015000}, {"_id": 0, "candid": 1})
    assert docs == [{"candid": 1105522281015015000}]
    assert k._sleep == [1.0]
    assert sim.request_count - before_server == 4
    assert k.requests - before_client == 4  # penquins' internal retries are counted too


def test_persistent_5xx_gives_up(sim, faults):
    k = make(sim, retries=2).connect()
    faults.error_rate, faults.error_statuses = 1.0, (503,)
    with pytest.raises(KowalskiError, match="gave up after 3 attempts") as ei:
        k.find("ZTF_alerts", {"candid": 1})
    assert ei.value.transient
    assert k._sleep == [1.0, 2.0]


def test_non_json_body_is_retried(sim, faults):
    k = make(sim).connect()
    faults.push("html:200", match="POST /api/queries")  # a proxy page with status 200: JSONDecodeError
    assert k.find("ZTF_alerts", {"candid": 1}) == []
    assert k._sleep == [1.0]


def test_timeout_is_retried(sim, faults):
    k = make(sim, timeout_s=0.5, max_time_ms=400, penquins_retries=0).connect()
    faults.hang_s = 2.0
    faults.push("timeout", match="POST /api/queries")
    assert k.find("ZTF_alerts", {"candid": 1}) == []
    assert k._sleep == [1.0]


def test_throttling_is_retried(sim, faults):
    k = make(sim).connect()
    faults.retry_after_s = 0
    faults.push("429", "429", "429", match="POST /api/queries")
    assert k.find("ZTF_alerts", {"candid": 1}) == []


def test_error_status_classification():
    assert is_transient_message("ExecutionTimeout: operation exceeded time limit")
    assert is_transient_message("Service Unavailable")
    assert is_transient_message("503: Service Unavailable")
    assert not is_transient_message("OperationFailure: Cannot do exclusion on field x in inclusion projection")
    assert not is_transient_message("KeyError: 'query_type nope not in (...)'")


def test_batch_is_matched_by_content(sim):
    k = make(sim).connect()
    candids = [d["candid"] for d in k.find("ZTF_alerts", {}, {"_id": 0, "candid": 1})]
    bodies = [Q.alerts_by_candid(candids[i:i + 5]) for i in range(0, len(candids), 5)]
    resps = k.batch(bodies)
    assert len(resps) == len(bodies) and all(r["status"] == "success" for r in resps)
    got = {d["candid"]: d for r in resps for d in r["data"]}
    assert set(got) == set(candids)
    assert all(isinstance(d["cutoutDifference"]["stampData"], bytes) for d in got.values())
    assert k.batch([]) == []


def test_batch_with_a_rejected_query_raises(sim):
    k = make(sim).connect()
    bad = Q.find("ZTF_alerts", {"candid": 1105522281015015000}, {"candid": 1, "objectId": 0})
    with pytest.raises(KowalskiError, match="OperationFailure"):
        k.batch([Q.find("ZTF_alerts", {"candid": 1}), bad])


def test_batch_transient_failure_is_retried(sim, faults):
    k = make(sim).connect()
    faults.push("502", "502", match="POST /api/queries")
    resps = k.batch([Q.find("ZTF_alerts", {"candid": 1105522281015015000}, {"_id": 0, "candid": 1}),
                     Q.find("ZTF_alerts", {"candid": 1127561445515015011}, {"_id": 0, "candid": 1})])
    assert sorted(d["candid"] for r in resps for d in r["data"]) == [1105522281015015000, 1127561445515015011]


def test_request_count_matches_the_server(sim):
    k = make(sim)
    before = sim.request_count
    k.connect()
    k.find("ZTF_alerts", {"candid": 1})
    k.batch([Q.find("ZTF_alerts", {"candid": i}) for i in range(6)])
    assert k.requests == sim.request_count - before == 2 + 1 + 6


def test_queries_never_mix_inclusion_and_exclusion():
    bodies = [Q.poll_page(1.0, 2.0, Q.prefilter(), limit=10), Q.alerts_by_candid([1, 2]),
              Q.history_alerts(["ZTF1"], (1, 2), limit=10), Q.history_aux(["ZTF1"])]
    for body in bodies:
        proj = body["query"]["projection"]
        values = {v for key, v in proj.items() if key != "_id"}
        assert len(values) <= 1 and set(proj) >= {"_id"}, proj  # {"_id": 0} alone: the whole document
        json.dumps(body)  # plain JSON: no ObjectId/datetime literals
