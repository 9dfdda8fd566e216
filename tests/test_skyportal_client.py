"""The bot's SkyPortal client (bot/skyportal/client.py).

Two layers:
- transport unit tests against a scripted fake ``requests`` session (exact control of statuses,
  bodies, headers and exceptions; fake clock/sleep so nothing really waits);
- end-to-end tests against the local SkyPortal stand-in ``bot.sim.skyportal.SkyPortalSim``.
"""

from __future__ import annotations

import json
import pickle
import threading
from datetime import datetime, timezone

import pytest
import requests

from bot.core import followup_rules
from bot.facilities.sedm import sedm_payload
from bot.skyportal.client import (
    FollowupResult,
    RateLimiter,
    SaveResult,
    SkyPortalClient,
    SkyPortalError,
)

TOKEN = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"


# ------------------------------------------------------------------------------------------------
# fake transport
# ------------------------------------------------------------------------------------------------
class FakeResp:
    def __init__(self, status=200, body=None, text=None, headers=None):
        self.status_code = status
        if text is None:
            text = json.dumps(body if body is not None else {"status": "success", "data": {}})
        self.text = text
        self.headers = headers or {}

    def json(self):
        return json.loads(self.text)

    def close(self):
        pass


def ok(data):
    return FakeResp(200, {"status": "success", "data": data, "version": "x"})


def err(status, message):
    return FakeResp(status, {"status": "error", "message": message, "data": {}})


NGINX_429 = "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body></body></html>"


class FakeSession:
    """Answers from a script: each item a FakeResp, an exception instance, or a callable(call)."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[dict] = []

    def request(self, method, url, params=None, json=None, headers=None, timeout=None):
        call = {"method": method, "url": url, "params": params, "json": json, "headers": headers, "timeout": timeout}
        self.calls.append(call)
        if not self.script:
            raise AssertionError(f"unexpected request {method} {url}")
        item = self.script.pop(0)
        if callable(item) and not isinstance(item, FakeResp):
            item = item(call)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        pass


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


def make(session, **kw):
    ft = FakeTime()
    kw.setdefault("rate_limit_per_s", None)
    c = SkyPortalClient("https://fritz.example/", TOKEN, session=session, sleep=ft.sleep, clock=ft.clock, **kw)
    return c, ft


# ------------------------------------------------------------------------------------------------
# transport
# ------------------------------------------------------------------------------------------------
class TestTransport:
    def test_auth_header_and_envelope(self):
        s = FakeSession(ok({"id": 1, "tokens": []}))
        c, _ = make(s)
        c.profile()
        call = s.calls[0]
        assert call["headers"]["Authorization"] == f"token {TOKEN}"
        assert call["method"] == "GET" and call["url"] == "https://fritz.example/api/internal/profile"
        assert call["timeout"] == 10.0

    def test_repr_and_pickle_hide_token(self):
        c, _ = make(FakeSession())
        assert TOKEN not in repr(c) and TOKEN not in str(c)
        assert "redacted" in repr(c)
        with pytest.raises(TypeError):
            pickle.dumps(c)

    @pytest.mark.parametrize("tok", ["", "  ", "a b", "mytoken123"])
    def test_bad_tokens_refused(self, tok):
        with pytest.raises(ValueError):
            SkyPortalClient("https://x", tok)

    def test_url_checked(self):
        with pytest.raises(ValueError):
            SkyPortalClient("fritz.example", TOKEN)

    def test_error_envelope(self):
        c, _ = make(FakeSession(err(400, "Failed to post source: boom")))
        with pytest.raises(SkyPortalError) as ei:
            c.transport.request("POST", "/api/sources", body={"id": "ZTF1"}, retry=True)
        e = ei.value
        assert e.status == 400 and e.transient is False
        assert e.method == "POST" and e.path == "/api/sources"
        assert "Failed to post source: boom" in str(e)

    def test_token_scrubbed_from_errors_and_data(self):
        s = FakeSession(
            err(400, f"Insufficient permissions for operation Token {TOKEN} read"),
            ok({"echo": f"x{TOKEN}y", "nested": [{"t": TOKEN}]}),
            requests.ConnectionError(f"boom {TOKEN}"),
        )
        c, _ = make(s, max_retries=0)
        with pytest.raises(SkyPortalError) as ei:
            c._get("/api/x")
        assert TOKEN not in str(ei.value) and TOKEN not in repr(ei.value) and TOKEN not in repr(ei.value.data)
        data = c._get("/api/y")
        assert TOKEN not in json.dumps(data)
        with pytest.raises(SkyPortalError) as ei:
            c._get("/api/z")
        assert TOKEN not in str(ei.value)
        # the requests exception (whose .request carries the headers) is not chained
        assert ei.value.__cause__ is None and ei.value.__context__ is None

    def test_401_message(self):
        c, _ = make(FakeSession(err(401, "HTTP 401: Unauthorized")))
        with pytest.raises(SkyPortalError) as ei:
            c.profile()
        assert ei.value.status == 401 and not ei.value.transient
        assert "refused the API token" in str(ei.value)
        assert TOKEN not in str(ei.value)

    def test_get_retries_500_then_success(self):
        s = FakeSession(err(500, "boom"), FakeResp(502, text="<html><title>502 Bad Gateway</title></html>"), ok([1]))
        c, ft = make(s, backoff_s=1.0)
        assert c._get("/api/allocation") == [1]
        assert len(s.calls) == 3
        assert ft.sleeps == [1.0, 2.0]  # exponential backoff

    def test_retry_after_honoured(self):
        s = FakeSession(FakeResp(429, text=NGINX_429, headers={"Retry-After": "7"}), ok({}))
        c, ft = make(s)
        c._get("/api/groups")
        assert ft.sleeps == [7.0]

    def test_retry_after_on_503_and_capped(self):
        s = FakeSession(err(503, "Database is temporarily unavailable"), ok({}))
        s.script[0].headers = {"Retry-After": "100000"}
        c, ft = make(s, max_retry_after_s=30)
        c._get("/api/groups")
        assert ft.sleeps == [30]

    def test_retry_after_http_date_falls_back_to_backoff(self):
        s = FakeSession(FakeResp(429, text=NGINX_429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), ok({}))
        c, ft = make(s, backoff_s=0.5)
        c._get("/api/groups")
        assert ft.sleeps == [0.5]

    def test_gives_up_after_max_retries_with_clear_html_error(self):
        s = FakeSession(*[FakeResp(429, text=NGINX_429) for _ in range(3)])
        c, ft = make(s, max_retries=2, backoff_s=1)
        with pytest.raises(SkyPortalError) as ei:
            c._get("/api/groups")
        e = ei.value
        assert e.status == 429 and e.transient
        assert "429 Too Many Requests" in e.message and "non-JSON" in e.message
        assert "after 3 attempts" in e.message
        assert len(s.calls) == 3 and ft.sleeps == [1, 2]

    def test_timeout_and_connection_errors_retried(self):
        s = FakeSession(requests.ReadTimeout("slow"), requests.ConnectionError("reset"), ok(5))
        c, ft = make(s)
        assert c._get("/api/x") == 5
        assert len(s.calls) == 3

    def test_timeout_exhausted_is_transient_without_status(self):
        s = FakeSession(*[requests.ConnectTimeout("x") for _ in range(2)])
        c, _ = make(s, max_retries=1)
        with pytest.raises(SkyPortalError) as ei:
            c._get("/api/x")
        assert ei.value.status is None and ei.value.transient

    def test_4xx_not_retried(self):
        s = FakeSession(err(400, "bad"))
        c, _ = make(s)
        with pytest.raises(SkyPortalError):
            c._get("/api/x")
        assert len(s.calls) == 1

    def test_non_idempotent_not_retried(self):
        s = FakeSession(err(500, "boom"))
        c, _ = make(s)
        with pytest.raises(SkyPortalError) as ei:
            c.transport.request("POST", "/api/whatever", body={}, retry=False)
        assert ei.value.transient and len(s.calls) == 1

    def test_200_non_json(self):
        s = FakeSession(FakeResp(200, text="<html>hello</html>"))
        c, _ = make(s, max_retries=0)
        with pytest.raises(SkyPortalError) as ei:
            c._get("/api/x")
        assert "non-JSON" in str(ei.value)

    def test_empty_body(self):
        s = FakeSession(FakeResp(504, text=""))
        c, _ = make(s, max_retries=0)
        with pytest.raises(SkyPortalError, match="empty body"):
            c._get("/api/x")

    def test_error_transient_flags(self):
        assert SkyPortalError(500, "x", "GET", "/a").transient
        assert SkyPortalError(429, "x", "GET", "/a").transient
        assert SkyPortalError(None, "x", "GET", "/a").transient
        assert not SkyPortalError(400, "x", "GET", "/a").transient
        assert not SkyPortalError(404, "x", "GET", "/a").transient
        e = pickle.loads(pickle.dumps(SkyPortalError(503, "m", "GET", "/a", data={"k": 1})))
        assert e.status == 503 and e.transient and e.data == {"k": 1}


class TestRateLimiter:
    def test_spacing_with_fake_clock(self):
        ft = FakeTime()
        rl = RateLimiter(5.0, burst=2, clock=ft.clock, sleep=ft.sleep)
        stamps = []
        for _ in range(7):
            rl.acquire()
            stamps.append(ft.now)
        gaps = [round(b - a, 9) for a, b in zip(stamps, stamps[1:])]
        assert gaps[0] == 0.0  # the burst
        assert all(abs(g - 0.2) < 1e-9 for g in gaps[1:]), gaps
        # in any window of 1 s at most rate+burst requests
        assert sum(1 for t in stamps if t < stamps[0] + 1.0) <= 7

    def test_refills_after_idle(self):
        ft = FakeTime()
        rl = RateLimiter(5.0, burst=2, clock=ft.clock, sleep=ft.sleep)
        for _ in range(4):
            rl.acquire()
        ft.now += 10
        n = len(ft.sleeps)
        rl.acquire()
        rl.acquire()
        assert len(ft.sleeps) == n  # two free slots again, no waiting

    def test_disabled(self):
        ft = FakeTime()
        rl = RateLimiter(None, clock=ft.clock, sleep=ft.sleep)
        for _ in range(100):
            rl.acquire()
        assert ft.sleeps == []

    def test_client_uses_limiter(self):
        s = FakeSession(*[ok({}) for _ in range(6)])
        c, ft = make(s, rate_limit_per_s=5.0, rate_limit_burst=1)
        for _ in range(6):
            c._get("/api/groups")
        assert ft.sleeps and all(abs(x - 0.2) < 1e-9 for x in ft.sleeps)
        assert len(ft.sleeps) == 5

    def test_thread_safe_reservations(self):
        # real clock, tiny rate: 20 acquisitions from 4 threads must take >= (20-burst)/rate
        import time as _t

        rl = RateLimiter(200.0, burst=2)
        t0 = _t.monotonic()

        def work():
            for _ in range(5):
                rl.acquire()

        ts = [threading.Thread(target=work) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert _t.monotonic() - t0 >= (20 - 2) / 200.0 * 0.9


# ------------------------------------------------------------------------------------------------
# endpoint methods against the fake (exact bodies / quirks)
# ------------------------------------------------------------------------------------------------
PROFILE = {
    "id": 1,
    "username": "btsbot",
    "permissions": ["Upload data", "Comment", "Annotate", "Classify"],
    "tokens": [
        {"id": TOKEN, "name": "bot", "acls": ["Upload data", "Comment"]},
        {"id": "ffffffff-0000-0000-0000-000000000000", "name": "other", "acls": ["Annotate"]},
    ],
}


class TestMethodsFake:
    def test_profile_strips_token_ids(self):
        s = FakeSession(ok(PROFILE))
        c, _ = make(s)
        prof = c.profile()
        blob = json.dumps(prof)
        assert TOKEN not in blob and "ffffffff-0000" not in blob
        assert prof["tokens"][0]["this_token"] is True
        assert c.token_acls() == {"Upload data", "Comment"}  # the token's, not the user's permissions

    def test_check_missing_acl(self):
        s = FakeSession(ok(PROFILE))
        c, _ = make(s)
        with pytest.raises(ValueError, match="Annotate"):
            c.check([1001], [2001])

    def test_source_view_is_one_get_with_requested_rows(self):
        src = {"id": "ZTF1", "groups": [{"id": 1001, "active": True, "requested": False},
                                        {"id": 1003, "active": False, "requested": True}],
               "followup_requests": [{"id": 4, "obj_id": "ZTF1", "allocation_id": 2001, "status": "submitted"}],
               "annotations": [{"id": 8, "origin": "btsbot", "data": {}}]}
        s = FakeSession(ok(src))
        c, _ = make(s)
        view = c.source_view("ZTF1")
        assert view.exists and view.active_groups == {1001}  # a pending invitation is not a save
        assert [r["id"] for r in view.followup_requests] == [4] and view.annotation_id("btsbot") == 8
        assert len(s.calls) == 1 and s.calls[0]["params"] == {"includeRequested": "true"}

    def test_source_view_of_a_missing_obj(self):
        c, _ = make(FakeSession(err(404, "Source not found")))
        view = c.source_view("ZTF1")
        assert not view.exists and view.active_groups == set() and view.annotation_id("btsbot") is None

    def test_followup_paging_and_exact_filter(self):
        page1 = {"followup_requests": [{"id": i, "obj_id": "ZTF1", "allocation_id": 2001} for i in range(3)],
                 "totalMatches": 5, "pageNumber": 1, "numPerPage": 3}
        page2 = {"followup_requests": [{"id": 3, "obj_id": "ZTF1x", "allocation_id": 2001},
                                       {"id": 4, "obj_id": "ZTF1", "allocation_id": 2001}],
                 "totalMatches": 5, "pageNumber": 2, "numPerPage": 3}
        s = FakeSession(ok(page1), ok(page2))
        c, _ = make(s)
        rs = c.followup_requests("ZTF1", 2001)
        assert [r["id"] for r in rs] == [0, 1, 2, 4]
        assert s.calls[0]["params"] == {"sourceID": "ZTF1", "numPerPage": 1000, "allocationID": 2001, "pageNumber": 1}
        assert s.calls[1]["params"]["pageNumber"] == 2

    @pytest.mark.parametrize(
        "answer,outcome",
        [
            (ok({"id": 7, "request_status": "submitted"}), "posted"),
            (ok({"id": None, "ignored": True, "message": "There is already a follow-up request ..."}), "ignored"),
            (ok({"id": 8, "request_status": "rejected: queue full"}), "rejected"),
            (err(400, "Error submitting follow-up request: failed to submit"), "failed"),
            (err(500, "boom"), "unknown"),
            (FakeResp(502, text="<html><title>502 Bad Gateway</title></html>"), "unknown"),
            (FakeResp(429, text=NGINX_429, headers={"Retry-After": "1"}), "unknown"),
            (FakeResp(200, text="not json"), "unknown"),
            (requests.ReadTimeout("read timed out"), "unknown"),
            (requests.ConnectionError("reset"), "unknown"),
        ],
    )
    def test_submit_outcomes_single_post(self, answer, outcome):
        s = FakeSession(answer)
        c, ft = make(s)
        res = c.submit_followup({"obj_id": "ZTF1", "allocation_id": 2001, "payload": {}})
        assert isinstance(res, FollowupResult) and res.outcome == outcome
        assert len(s.calls) == 1 and ft.sleeps == []
        assert s.calls[0]["timeout"] == 30.0
        if outcome == "posted":
            assert res.request_id == 7 and res.status == "submitted"
        if outcome == "rejected":
            assert res.request_id == 8 and res.status.startswith("rejected")
        if outcome == "ignored":
            assert "already" in res.message and res.request_id is None

    def test_update_body(self):
        s = FakeSession(ok({}))
        c, _ = make(s)
        c.update_followup(5, "ZTF1", 2001, {"observation_type": "IFU", "priority": 4})
        call = s.calls[0]
        assert call["method"] == "PUT" and call["url"].endswith("/api/followup_request/5")
        assert call["json"] == {"payload": {"observation_type": "IFU", "priority": 4}, "obj_id": "ZTF1", "allocation_id": 2001}
        assert "status" not in call["json"]
        with pytest.raises(TypeError):  # the real server answers 500 to target_group_ids in a PUT: never sent
            c.update_followup(5, "ZTF1", 2001, {"priority": 4}, target_group_ids=[1001])

    def test_annotation_post_race_then_put(self):
        s = FakeSession(
            ok([]),  # GET: none yet
            err(400, "Annotation already exists: duplicate key"),  # POST lost a race
            ok([{"id": 42, "origin": "btsbot:v1", "data": {}}]),  # re-GET
            ok({}),  # PUT
        )
        c, _ = make(s)
        assert c.upsert_annotation("ZTF1", "btsbot:v1", {"score": 0.9}) == 42
        assert [x["method"] for x in s.calls] == ["GET", "POST", "GET", "PUT"]
        assert s.calls[3]["url"].endswith("/api/sources/ZTF1/annotations/42")

    def test_bad_obj_ids_rejected_locally(self):
        c, _ = make(FakeSession())
        for bad in ("", "ZTF 1", "../x", None):
            with pytest.raises(ValueError):
                c.source_view(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# against the SkyPortal stand-in
# ------------------------------------------------------------------------------------------------
OBJ = "ZTF23abhvlji"
RA, DEC = 30.2905, 37.4507


@pytest.fixture
def sim():
    sim_mod = pytest.importorskip("bot.sim.skyportal", reason="the SkyPortal stand-in is not available")
    s = sim_mod.SkyPortalSim(seed=None)
    url = s.start()
    assert url == s.url
    yield s
    s.stop()


@pytest.fixture
def ft():
    return FakeTime()


@pytest.fixture
def client(sim, ft):
    c = SkyPortalClient(
        sim.url,
        sim.token,
        timeout_s=5.0,
        followup_timeout_s=5.0,
        rate_limit_per_s=None,
        backoff_s=0.01,
        sleep=ft.sleep,
        clock=ft.clock,
    )
    yield c
    c.close()


SCANNER_TOKEN = "5e6d3c1a-9b1f-4c2e-8d7a-5ca000000003"  # seeded human scanner, member of 1003
READONLY_TOKEN = "5e6d3c1a-9b1f-4c2e-8d7a-b75b07000002"  # seeded bot token with only the Comment ACL


def saved_groups(client, obj_id):
    """The groups a source is actively saved to, as the default GET lists them (SP 7.8)."""
    return client.source_view(obj_id).active_groups


def posts(sim, path):
    return [r for r in sim.requests if r["method"] == "POST" and r["path"] == path]


def sedm(prio=3, obs="IFU"):
    return sedm_payload({"observation_type": obs, "priority": prio}, 7, datetime.now(timezone.utc))


def body(obj=OBJ, prio=3, obs="IFU", **kw):
    return followup_rules.followup_body(obj, 2001, sedm(prio, obs), [1002], target_group_ids=[1001],
                                  source_group_ids=[1001], **kw)


class TestSimProfileCheck:
    def test_profile_and_token_acls(self, sim, client):
        prof = client.profile()
        assert prof["username"] == "btsbot"
        assert sim.token not in json.dumps(prof)
        assert client.token_acls() == {"Upload data", "Comment", "Annotate"}
        r = sim.requests[-1]
        assert r["method"] == "GET" and r["path"] == "/api/internal/profile" and r["status"] == 200

    def test_check_good(self, sim, client):
        sim.clear_requests()
        assert client.check([1001], [2001]) is None  # no ValueError: the token, group and allocation are usable
        asked = [(r["method"], r["path"], r["status"]) for r in sim.requests]
        assert asked == [("GET", "/api/internal/profile", 200), ("GET", "/api/groups", 200),
                         ("GET", "/api/groups/1001", 200), ("GET", "/api/allocation", 200)]
        sim.clear_requests()
        client.check([1, 1001, 1002], [])
        assert [r["path"] for r in sim.requests if r["path"].startswith("/api/groups/")] == [
            "/api/groups/1", "/api/groups/1001", "/api/groups/1002"]  # each group's can_save is read
        with pytest.raises(ValueError, match="group 1003"):  # the same call refuses a group it cannot save to
            client.check([1001, 1003], [])

    @pytest.mark.parametrize(
        "groups,allocs,needle",
        [
            ([1003], [2001], "group 1003"),  # exists, bot not a member
            ([9999], [2001], "group 9999"),  # does not exist
            ([1001], [2002], "allocation 2002"),  # another group's allocation: invisible
            ([1001], [9999], "allocation 9999"),
        ],
    )
    def test_check_bad_ids(self, client, groups, allocs, needle):
        with pytest.raises(ValueError, match=needle):
            client.check(groups, allocs)

    def test_check_token_missing_acls(self, sim, ft):
        c = SkyPortalClient(sim.url, READONLY_TOKEN, rate_limit_per_s=None, sleep=ft.sleep, clock=ft.clock)
        with pytest.raises(ValueError, match="Upload data") as ei:
            c.check([1001], [2001])
        assert READONLY_TOKEN not in str(ei.value)

    def test_bad_token_401(self, sim, ft):
        bad = "00000000-1111-2222-3333-444444444444"
        c = SkyPortalClient(sim.url, bad, rate_limit_per_s=None, sleep=ft.sleep, clock=ft.clock)
        with pytest.raises(SkyPortalError) as ei:
            c.profile()
        e = ei.value
        assert e.status == 401 and not e.transient and "token" in e.message
        assert bad not in str(e) and bad not in repr(e) and bad not in repr(c)
        assert len(sim.requests) == 1  # 401 is not retried
        with pytest.raises(SkyPortalError):
            c.check([1001], [2001])

    def test_groups_and_allocations(self, client):
        g = client.groups()
        assert {x["id"] for x in g["user_groups"]} == {1, 1001, 1002}
        assert [a["id"] for a in client.allocations()] == [2001]


class TestSimSources:
    def test_missing_source_view(self, client):
        assert not client.source_view("ZTF99nothere").exists
        assert saved_groups(client, "ZTF99nothere") == set()

    def test_save_twice_idempotent(self, sim, client):
        assert client.post_source(OBJ, [1001], RA, DEC).saved == [1001]
        assert posts(sim, "/api/sources")[0]["body"] == {"id": OBJ, "group_ids": [1001], "ra": RA, "dec": DEC}
        assert client.post_source(OBJ, [1001], RA, DEC).saved == [1001]  # idempotent: listed again
        assert saved_groups(client, OBJ) == {1001}
        view = client.source_view(OBJ)
        assert view.exists and view.groups[1001]["saved_at"] and view.followup_requests == []

    def test_post_source_is_one_request(self, sim, client):
        n = len(sim.requests)
        assert client.post_source(OBJ, [1001], RA, DEC) == SaveResult(saved=[1001])
        assert client.post_source(OBJ, [1001, 1002], RA, DEC) == SaveResult(saved=[1001, 1002])
        assert [(r["method"], r["path"]) for r in sim.requests[n:]] == [("POST", "/api/sources")] * 2
        assert saved_groups(client, OBJ) == {1001, 1002}
        with pytest.raises(SkyPortalError) as ei:  # a group the bot is not in: refused, naming it
            client.post_source(OBJ, [1003], RA, DEC)
        assert ei.value.status == 400 and "1003" in ei.value.message

    def test_existing_obj_saved_elsewhere(self, client):
        # ZTF18simjunk exists, saved to 1002 by the scanner
        assert saved_groups(client, "ZTF18simjunk") == {1002}
        assert client.post_source("ZTF18simjunk", [1001]).saved == [1001]
        assert saved_groups(client, "ZTF18simjunk") == {1001, 1002}

    def test_pending_invitation_is_not_a_save(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        # invite a group the bot is not a member of: SkyPortal answers 200 but only records a request
        client.transport.request("POST", "/api/source_groups", body={"objId": OBJ, "inviteGroupIds": [1003]}, retry=False)
        assert saved_groups(client, OBJ) == {1001}
        # the invitation is a requested, inactive row (seen by a member of 1003; the bot cannot read it)
        scanner = SkyPortalClient(sim.url, SCANNER_TOKEN, rate_limit_per_s=None)
        rows = scanner.source_view(OBJ).groups
        assert rows[1003]["active"] is False and rows[1003]["requested"] is True
        assert 1003 not in saved_groups(scanner, OBJ)
        # POST /api/sources to a non-member group is refused outright (SP 1.1), naming the group
        with pytest.raises(SkyPortalError) as ei:
            client.post_source(OBJ, [1003])
        assert ei.value.status == 400 and "1003" in ei.value.message and not ei.value.transient

    def test_save_refused_not_retried(self, sim, client):
        with pytest.raises(SkyPortalError):
            client.post_source(OBJ, [1003], RA, DEC)
        assert len(posts(sim, "/api/sources")) == 1


class TestSimCommentsAnnotations:
    def test_comment_dedup(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        c1 = client.post_comment(OBJ, "BTSbot: saved (score 0.93)", [1001]).comment_id
        c2 = client.post_comment(OBJ, "BTSbot: saved (score 0.93)", [1001]).comment_id
        assert c1 == c2
        assert posts(sim, f"/api/sources/{OBJ}/comments")[0]["body"] == {"text": "BTSbot: saved (score 0.93)", "group_ids": [1001]}
        c3 = client.post_comment(OBJ, "BTSbot: saved (score 0.93)").comment_id  # sitewide: a different group set
        assert c3 != c1
        again = client.post_comment(OBJ, "BTSbot: saved (score 0.93)", [1001])
        assert again.comment_id == c1 and again.merged is True  # "Same comment already exists."
        assert client.post_comment(OBJ, "BTSbot: saved (score 0.931)", [1001]).merged is False

    def test_comment_unknown_obj_is_400(self, sim, client):
        with pytest.raises(SkyPortalError) as ei:
            client.post_comment("ZTF99nothere", "hello", [1001]).comment_id
        assert ei.value.status == 400 and sim.token not in str(ei.value)

    def test_annotation_upsert(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        a1 = client.upsert_annotation(OBJ, "btsbot:v1.0.1", {"score": 0.5}, [1001])
        a2 = client.upsert_annotation(OBJ, "btsbot:v1.0.1", {"score": 0.9, "n": 2}, [1001])
        assert a1 == a2
        anns = [a for a in client.annotations(OBJ) if a["origin"] == "btsbot:v1.0.1"]
        assert len(anns) == 1 and anns[0]["data"] == {"score": 0.9, "n": 2}
        methods = [(r["method"], r["path"]) for r in sim.writes()]
        assert ("PUT", f"/api/sources/{OBJ}/annotations/{a1}") in methods
        assert len(posts(sim, f"/api/sources/{OBJ}/annotations")) == 1

    def test_annotate_posts_then_puts_the_known_id(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        n = len(sim.requests)
        aid, created = client.annotate(OBJ, "btsbot", {"score": 0.5}, [1001])
        assert created is True
        assert client.annotate(OBJ, "btsbot", {"score": 0.9}, [1001], annotation_id=aid) == (aid, False)
        assert [(r["method"], r["path"]) for r in sim.requests[n:]] == [
            ("POST", f"/api/sources/{OBJ}/annotations"), ("PUT", f"/api/sources/{OBJ}/annotations/{aid}")]
        # an id not journaled (another run made it): POST answers "already exists", then read and PUT
        assert client.annotate(OBJ, "btsbot", {"score": 0.95}, [1001]) == (aid, False)
        anns = [a for a in client.annotations(OBJ) if a["origin"] == "btsbot"]
        assert len(anns) == 1 and anns[0]["data"] == {"score": 0.95}

    def test_annotation_unknown_obj_404(self, client):
        with pytest.raises(SkyPortalError) as ei:
            client.upsert_annotation("ZTF99nothere", "btsbot", {"x": 1})
        assert ei.value.status == 404


class TestSimFollowup:
    def test_post_then_duplicate_ignored(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        r = client.submit_followup(body())
        assert r.outcome == "posted" and r.status == "submitted" and isinstance(r.request_id, int)
        sent = posts(sim, "/api/followup_request")[0]["body"]
        assert sent["not_if_duplicates"] is True and sent["radius"] == 0.5
        r2 = client.submit_followup(body())
        assert r2.outcome == "ignored" and r2.request_id is None
        assert "already a follow-up request" in r2.message
        reqs = client.followup_requests(OBJ, 2001)
        assert [x["id"] for x in reqs] == [r.request_id]
        # the plan agrees: same priority -> skip; higher -> update
        now = datetime.now(timezone.utc)
        assert followup_rules.plan_followup(reqs, 2001, sedm(3), now).action == "skip"
        plan = followup_rules.plan_followup(reqs, 2001, sedm(5), now)
        assert plan.action == "update" and plan.request["id"] == r.request_id

    def test_update_priority(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        r = client.submit_followup(body(prio=2))
        reqs = client.followup_requests(OBJ)
        plan = followup_rules.plan_followup(reqs, 2001, sedm(4), datetime.now(timezone.utc))
        assert plan.action == "update"
        client.update_followup(plan.request["id"], OBJ, 2001, plan.update_payload)
        (after,) = client.followup_requests(OBJ)
        assert after["id"] == r.request_id and after["payload"]["priority"] == 4
        assert after["status"] == "submitted"
        assert after["payload"]["start_date"] == plan.request["payload"]["start_date"]
        put = [x for x in sim.writes() if x["method"] == "PUT"][-1]
        assert put["path"] == f"/api/followup_request/{r.request_id}" and "status" not in put["body"]

    def test_rejected(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        sim.set_facility_behaviour(2001, "reject")
        r = client.submit_followup(body())
        assert r.outcome == "rejected" and r.request_id is not None and r.status.startswith("rejected")
        # a rejected request blocks nothing (neither the server dedupe nor the plan)
        reqs = client.followup_requests(OBJ)
        assert followup_rules.plan_followup(reqs, 2001, sedm(3), datetime.now(timezone.utc)).action == "post"

    def test_failed_leaves_row(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        sim.set_facility_behaviour(2001, "fail")
        r = client.submit_followup(body())
        assert r.outcome == "failed" and r.http_status == 400
        assert len(posts(sim, "/api/followup_request")) == 1
        (row,) = client.followup_requests(OBJ)
        assert row["status"].startswith("failed to submit")
        plan = followup_rules.plan_followup([row], 2001, sedm(3), datetime.now(timezone.utc))
        assert plan.action == "skip" and "failed" in plan.reason

    def test_invalid_payload_failed(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        b = body()
        b["payload"]["priority"] = 6  # bypassing sedm_payload's check: the server's jsonschema refuses it
        r = client.submit_followup(b)
        assert r.outcome == "failed" and "5" in r.message

    def test_unknown_key_is_400(self, client):
        client.post_source(OBJ, [1001], RA, DEC)
        r = client.submit_followup({**body(), "comment": "nope"})
        assert r.outcome == "failed" and "comment" in r.message

    @pytest.mark.parametrize(
        "flags,obj",
        [({"classified": True}, OBJ), ({"spectra": True}, OBJ), ({"tns_classified": True}, OBJ), ({}, "ZTF18simjunk")],
    )
    def test_constraints_ignored(self, sim, client, flags, obj):
        client.post_source(obj, [1001], RA, DEC)
        if flags:
            sim.set_obj_flags(obj, **flags)
        r = client.submit_followup(body(obj=obj))
        assert r.outcome == "ignored" and "not submitting request" in r.message
        assert client.followup_requests(obj) == []

    def test_source_group_constraint(self, client):
        client.post_source(OBJ, [1002], RA, DEC)  # not in 1001
        r = client.submit_followup(body())
        assert r.outcome == "ignored" and "source_group_ids" in r.message

    def test_listing_exact_obj_and_paging(self, sim, client):
        client.post_source(OBJ, [1001], RA, DEC)
        client.post_source(OBJ + "x", [1001], RA + 1, DEC)
        client.submit_followup(body())
        client.submit_followup(body(obj=OBJ + "x"))
        got = client.followup_requests(OBJ)
        assert [g["obj_id"] for g in got] == [OBJ]  # sourceID is a substring match server-side
        q = [r for r in sim.requests if r["path"] == "/api/followup_request" and r["method"] == "GET"][-1]["query"]
        assert q["sourceID"] == OBJ and q["numPerPage"] == "1000" and q["pageNumber"] == "1"

    def test_timeout_on_post_is_unknown_and_single(self, sim, ft):
        sim.faults.hang_s = 2.0
        c = SkyPortalClient(sim.url, sim.token, timeout_s=5.0, followup_timeout_s=0.5, rate_limit_per_s=None,
                            backoff_s=0.01, sleep=ft.sleep, clock=ft.clock)
        c.post_source(OBJ, [1001], RA, DEC)
        sim.faults.push("timeout_after", match="POST /api/followup_request")
        r = c.submit_followup(body())
        assert r.outcome == "unknown" and r.http_status is None
        assert len(posts(sim, "/api/followup_request")) == 1
        # the server did commit it: listing again finds it and the plan says skip, not re-post
        reqs = c.followup_requests(OBJ, 2001)
        assert len(reqs) == 1 and reqs[0]["status"] == "submitted"
        assert followup_rules.plan_followup(reqs, 2001, sedm(3), datetime.now(timezone.utc)).action == "skip"
        assert len(posts(sim, "/api/followup_request")) == 1

    @pytest.mark.parametrize("fault", ["500", "502", "503", "429", "html:504"])
    def test_5xx_on_post_is_unknown_not_retried(self, sim, client, ft, fault):
        client.post_source(OBJ, [1001], RA, DEC)
        sim.faults.push(fault, match="POST /api/followup_request")
        r = client.submit_followup(body())
        assert r.outcome == "unknown"
        assert len(posts(sim, "/api/followup_request")) == 1 and ft.sleeps == []


class TestSimTransport:
    def test_429_retry_after_honoured(self, sim, client, ft):
        sim.faults.retry_after_s = 3
        sim.faults.push("429", "429", match="GET /api/groups")
        client.groups()
        assert ft.sleeps == [3, 3]
        assert [r["status"] for r in sim.requests if r["path"] == "/api/groups"] == [429, 429, 200]

    def test_500_then_success_get(self, sim, client, ft):
        sim.faults.push("500", "html:502", match="GET /api/allocation")
        assert [a["id"] for a in client.allocations()] == [2001]
        assert [r["status"] for r in sim.requests if r["path"] == "/api/allocation"] == [500, 502, 200]
        assert ft.sleeps == [0.01, 0.02]

    def test_persistent_html_error_clear(self, sim, client):
        sim.faults.push(*["html:502"] * 5, match="GET /api/groups")
        with pytest.raises(SkyPortalError) as ei:
            client.groups()
        assert ei.value.status == 502 and ei.value.transient and "non-JSON" in ei.value.message

    def test_retry_post_sources_after_500(self, sim, client):
        sim.faults.push("500", match="POST /api/sources")
        assert client.post_source(OBJ, [1001], RA, DEC).saved == [1001]
        assert [r["status"] for r in posts(sim, "/api/sources")] == [500, 200]

    def test_timeout_get_retried(self, sim, ft):
        sim.faults.hang_s = 1.0
        c = SkyPortalClient(sim.url, sim.token, timeout_s=0.3, rate_limit_per_s=None, backoff_s=0.01,
                            sleep=ft.sleep, clock=ft.clock)
        sim.faults.push("timeout", match="GET /api/groups")
        assert "user_groups" in c.groups()

    def test_rate_limit_spacing_fake_clock(self, sim, ft):
        c = SkyPortalClient(sim.url, sim.token, rate_limit_per_s=5.0, rate_limit_burst=1,
                            sleep=ft.sleep, clock=ft.clock)
        for _ in range(6):
            c.groups()
        assert len(ft.sleeps) == 5 and all(abs(x - 0.2) < 1e-9 for x in ft.sleeps)

    def test_token_absent_everywhere(self, sim, client):
        errors = []
        for call in (
            lambda: client.post_comment("ZTF99nothere", "x", [1001]),
            lambda: client.post_source(OBJ, [1003], RA, DEC),
            lambda: client.followup_requests(OBJ, 2002),
            lambda: client.update_followup(12345, OBJ, 2001, {"priority": 1}),
        ):
            with pytest.raises(SkyPortalError) as ei:
                call()
            errors.append(ei.value)
        for e in errors:
            assert sim.token not in str(e) and sim.token not in repr(e) and sim.token not in repr(e.data)
        assert sim.token not in repr(client)
