"""The BOOM client against the local BOOM: login, queries, cutouts, retries of what is transient only,
re-login on an expired token, and errors that name the cause without the secrets."""

from __future__ import annotations

import pytest

from bot.boom.client import BoomClient, BoomError
from bot.boom.documents import STAMPS
from bot.sim.boom.server import BoomSim


@pytest.fixture(scope="module")
def boom(real_alerts):
    with BoomSim(users={"bot": "s3cret-pw"}) as sim:
        sim.load_alerts(real_alerts)
        yield sim


def client(boom, **kw):
    waits = []
    c = BoomClient(boom.url, "bot", "s3cret-pw", retries=3, backoff_s=0.01, sleep=waits.append, **kw)
    c.waits = waits
    return c.connect()


def test_connect_find_and_cutouts(boom, real_alerts):
    c = client(boom)
    assert c.has_cutout_catalog
    docs = c.find("ZTF_alerts", {"candidate.isdiffpos": True}, {"objectId": 1}, sort={"_id": 1}, limit=100)
    assert [d["_id"] for d in docs] == sorted(d["_id"] for d in docs) and len(docs) > 10
    packet = real_alerts[0]
    stamps = c.cutouts(packet["candid"])
    assert all(stamps[k] == packet[k]["stampData"] for k in STAMPS)
    assert c.cutouts(1) == {k: None for k in STAMPS}
    assert c.requests == 5  # /auth, /catalogs, the find and two cutouts: one request each


def test_transient_answers_are_retried_and_query_errors_are_not(boom):
    c = client(boom)
    boom.faults.push("429", "503", match="POST /queries/find")
    assert c.find("ZTF_alerts", {}, {"_id": 1}, limit=1)
    assert len(c.waits) == 2 and c.waits[0] == 1.0  # Retry-After honoured
    n = c.requests
    with pytest.raises(BoomError) as err:
        c.find("ZTF_alerts", {"_id": {"$bogus": 1}}, limit=1)
    assert err.value.status == 500 and not err.value.transient and c.requests == n + 1
    with pytest.raises(BoomError, match="Catalog nope does not exist"):
        c.find("nope", {}, limit=1)


def test_an_expired_token_logs_in_again(boom):
    c = client(boom)
    boom.expire_tokens()
    assert c.find("ZTF_alerts", {}, {"_id": 1}, limit=1)


def test_wrong_password_and_no_server_say_so_without_the_secret(boom):
    with pytest.raises(BoomError) as err:
        BoomClient(boom.url, "bot", "wrong-pw", retries=0).connect()
    assert "refused the username or password" in str(err.value) and "wrong-pw" not in str(err.value)
    with pytest.raises(BoomError, match="credentials"):
        BoomClient(boom.url, "bot", None)
    with BoomSim() as gone:
        url = gone.url
    with pytest.raises(BoomError) as err:
        BoomClient(url, "bot", "s3cret-pw", retries=1, backoff_s=0, sleep=lambda s: None).connect()
    assert err.value.transient and "cannot reach BOOM" in str(err.value) and "connection refused" in str(err.value)


class FakeTime:
    """A clock that only sleeps move: what the rate limiter waited, without waiting."""

    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_the_client_keeps_under_its_request_rate(boom):
    t = FakeTime()
    c = BoomClient(boom.url, "bot", "s3cret-pw", max_requests_per_s=10, sleep=t.sleep, clock=t.clock).connect()
    t0 = t.now
    for _ in range(40):
        c.find("ZTF_alerts", {}, {"_id": 1}, limit=1)
    # 42 requests (login, catalogs, 40 finds): the first 20 back to back (the burst), then 10 per second
    assert c.requests == 42
    assert t.now - t0 == pytest.approx((42 - 20) / 10, abs=0.05)
    assert max(t.slept) == pytest.approx(0.1, abs=0.01)


def test_concurrent_calls_log_in_once_and_survive_429s(boom, real_alerts):
    c = client(boom, max_threads=4)
    boom.expire_tokens()
    c._token = "forgotten"  # as after a server restart: every thread would meet a 401
    auth0 = boom.request_counts.get("POST /auth", 0)
    boom.faults.push("429", "429", "503", match="POST /queries/find")
    candids = sorted(int(p["candid"]) for p in real_alerts)
    calls = [lambda cid=cid: c.find("ZTF_alerts", {"_id": cid}, {"_id": 1}, limit=1) for cid in candids[:12]]
    got = c.concurrently(calls)
    assert [r[0]["_id"] for r in got] == candids[:12]  # in order, every one
    assert boom.request_counts.get("POST /auth", 0) - auth0 == 1
    assert boom.faults.pending() == 0 and len([w for w in c.waits if w >= 1.0]) >= 2  # Retry-After: 1 honoured


def test_a_failed_concurrent_call_is_raised(boom):
    c = client(boom, max_threads=3)
    calls = [lambda: c.find("ZTF_alerts", {}, {"_id": 1}, limit=1),
             lambda: c.find("ZTF_alerts", {"_id": {"$bogus": 1}}, limit=1)]
    with pytest.raises(BoomError) as err:
        c.concurrently(calls)
    assert err.value.status == 500
