"""The save action kind (bot/actions/save.py), hook by hook: `checks`/`shares` (every policy's save groups),
`plan` (the request journaled for a decision), `would_send` (the dry-run's record), `execute` through the real
SkyPortalClient against the local SkyPortal stand-in (a new source saved; a source already saved: nothing
posted; only the groups not yet saved are posted, the source read once per run; a group the answer leaves out
of `saved_to_groups`: failed, with `missing`; a new source without a position refused by Fritz) and `describe`
(its words for each outcome, for a journal record, a history row, a plain dict and {}).

Each hook is called on its own with a `Context` and journal rows built here (no cycle, no engine)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests
from conftest import SN
from kind_context import acting, described, kind_context

from bot.actions.save import Save
from bot.core.policies import Decision
from bot.skyportal.client import SkyPortalClient
from bot.skyportal.errors import SkyPortalError

NOW = datetime(2023, 10, 5, 11, 0, tzinfo=timezone.utc)
ALERT = {"candid": 2001, "objectId": SN, "extra": {"ra": 143.8, "dec": 83.97}}
SAVE = Save()


def policies(*specs):
    """Acting policies from the config: `specs` are `policies[]` entries (default: the shipped policies)."""
    return acting(list(specs))


def saver(name, *groups):
    return {"name": name, "actions": {"save": {"group_ids": list(groups)}}}


def decision(policy, oid=SN):
    return Decision(policy=policy.name, objectId=oid, candid=2001, jd=2460222.5, n_counting=2,
                    counting_candids=(2000, 2001), max_score=0.95, score=0.95, magpsf=18.0, peakmag_so_far=18.0,
                    age=1.0, model_version=policy.model_version)


def context(journal, pols, client=None, mode="live"):
    return kind_context(journal, pols, {"skyportal": client} if client else {}, now=NOW, mode=mode)


def planned(ctx, policy, alert=ALERT):
    """Journal the decision and the save it plans (as `Actor.plan` does); the ActionRecord."""
    d = decision(policy, alert.get("objectId", SN))
    did, _ = ctx.journal.record_decision(d.policy, d.objectId, d.candid, d.jd, d.evidence, mode=ctx.mode)
    ((key, request),) = SAVE.plan(ctx, policy, d, alert)
    return ctx.journal.action(ctx.journal.start_action(did, SAVE.name, request, key=key, mode=ctx.mode))


def calls(sim, method, path):
    return [r for r in sim.requests if r["method"] == method and r["path"] == path]


@pytest.fixture
def client(skyportal):
    with SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=50.0, backoff_s=0.01) as c:
        yield c


# --- at start and planning ----------------------------------------------------------------------------------
def test_checks_and_shares_are_every_policys_save_groups(journal):
    pols = policies(saver("a", 1002, 1001), saver("b", 1001),
                    {"name": "c", "actions": {"followup": {"allocation_id": 2001,
                                                           "payload": {"observation_type": "IFU", "priority": 3}}}})
    assert SAVE.checks(pols) == {"groups": [1001, 1002]}  # sorted, once each; a policy without save adds none
    assert SAVE.shares(pols) == {"save_groups": [1001, 1002]}
    assert context(journal, pols).save_groups == [1001, 1002]  # where the comments and the annotation go
    assert SAVE.checks(pols[2:]) == {"groups": []} and SAVE.shares([]) == {"save_groups": []}


def test_plan_requests_the_policys_groups_at_the_alerts_position(journal):
    (p,) = policies(saver("a", 1001, 1002))
    ctx = context(journal, [p])
    assert SAVE.plan(ctx, p, decision(p), ALERT) == [
        ("save", {"obj_id": SN, "group_ids": [1001, 1002], "ra": 143.8, "dec": 83.97})]
    assert SAVE.plan(ctx, p, decision(p), {"candid": 2001}) == [  # an alert without a position
        ("save", {"obj_id": SN, "group_ids": [1001, 1002], "ra": None, "dec": None})]
    action = planned(ctx, p)
    assert (action.action, action.key, action.status, action.policy) == ("save", "save", "pending", "a")
    assert action.request == {"obj_id": SN, "group_ids": [1001, 1002], "ra": 143.8, "dec": 83.97}


def test_would_send_is_the_post_of_the_planned_groups(journal):
    (p,) = policies(saver("a", 1001, 1002))
    ctx = context(journal, [p], mode="dry-run")
    assert SAVE.would_send(ctx, planned(ctx, p)) == {
        "method": "POST", "path": "/api/sources", "body": {"id": SN, "group_ids": [1001, 1002]}}


# --- execute, through the real client against the local SkyPortal ---------------------------------------------
def test_a_new_source_is_saved(journal, skyportal, client):
    (p,) = policies(saver("a", 1001))
    ctx = context(journal, [p], client)
    assert SAVE.execute(ctx, planned(ctx, p)) == ("saved", {"saved": [1001], "already": [], "missing": []})
    assert [(r["method"], r["path"], r["status"]) for r in skyportal.requests] == [
        ("GET", f"/api/sources/{SN}", 404), ("POST", "/api/sources", 200)]  # read first: no such Obj yet
    assert skyportal.requests[1]["body"] == {"id": SN, "group_ids": [1001], "ra": 143.8, "dec": 83.97}
    assert client.source_view(SN).active_groups == {1001}  # on Fritz now
    view = ctx.source_view(SN, read=False)  # this run's view knows what the save changed
    assert view.exists and view.created and view.active_groups == {1001}


def test_a_source_already_saved_is_already_saved_and_nothing_is_posted(journal, skyportal, client):
    (p,) = policies(saver("a", 1001))
    action = planned(context(journal, [p]), p)
    assert SAVE.execute(context(journal, [p], client), action)[0] == "saved"
    n = len(skyportal.requests)
    outcome, response = SAVE.execute(context(journal, [p], client), action)  # a later run (its own view)
    assert (outcome, response) == ("already_saved", {"saved": [], "already": [1001], "missing": []})
    assert [(r["method"], r["path"]) for r in skyportal.requests[n:]] == [("GET", f"/api/sources/{SN}")]


def test_only_the_groups_not_yet_saved_are_posted_and_the_source_is_read_once_per_run(journal, skyportal, client):
    a, b = policies(saver("a", 1002), saver("b", 1001, 1002))
    ctx = context(journal, [a, b], client)
    first, second = planned(ctx, a), planned(ctx, b)
    assert SAVE.execute(ctx, first) == ("saved", {"saved": [1002], "already": [], "missing": []})
    assert SAVE.execute(ctx, second) == ("saved", {"saved": [1001], "already": [1002], "missing": []})
    assert [r["body"]["group_ids"] for r in calls(skyportal, "POST", "/api/sources")] == [[1002], [1001]]
    assert len(calls(skyportal, "GET", f"/api/sources/{SN}")) == 1  # the second save used the run's view
    assert client.source_view(SN).active_groups == {1001, 1002}


class LeavesOutOfSavedToGroups(requests.Session):
    """A transport whose `POST /api/sources` answers leave `group` out of `saved_to_groups`, as SkyPortal does
    for a group it skipped (SP 1.1; the stand-in does so only for `ignore_if_in_group_ids`, never sent by the bot)."""

    def __init__(self, group):
        super().__init__()
        self.group = group

    def request(self, method, url, *args, **kwargs):
        resp = super().request(method, url, *args, **kwargs)
        if method == "POST" and url.endswith("/api/sources") and resp.status_code == 200:
            envelope = resp.json()
            envelope["data"]["saved_to_groups"].remove(self.group)
            resp._content = json.dumps(envelope).encode()
        return resp


def test_a_group_left_out_of_saved_to_groups_is_a_failed_save_naming_it(journal, skyportal):
    (p,) = policies(saver("a", 1001, 1002))
    with SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=50.0, backoff_s=0.01,
                         session=LeavesOutOfSavedToGroups(1002)) as client:
        ctx = context(journal, [p], client)
        assert SAVE.execute(ctx, planned(ctx, p)) == (
            "failed", {"saved": [1001], "already": [], "missing": [1002], "message": "not saved to group(s) [1002]"})
    assert ctx.source_view(SN, read=False).active_groups == {1001}  # the run's view trusts the answer only


def test_a_new_source_without_a_position_is_refused_by_fritz(journal, skyportal, client):
    (p,) = policies(saver("a", 1001))
    ctx = context(journal, [p], client)
    with pytest.raises(SkyPortalError) as err:  # the engine journals it as a final "failed"
        SAVE.execute(ctx, planned(ctx, p, {"candid": 2001, "objectId": SN}))
    assert err.value.status == 400 and err.value.transient is False
    assert "RA/Declination must not be null for a new Obj" in err.value.message
    assert not client.source_view(SN).exists


# --- describe ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome, response, words", [
    ("saved", {"saved": [1001], "already": [1002], "missing": []}, "saved to group 1001, 1002"),
    ("already_saved", {"saved": [], "already": [1001], "missing": []}, "already saved to group 1001"),
    ("failed", {"saved": [1001], "already": [], "missing": [1002], "message": "not saved to group(s) [1002]"},
     "saved to group 1001; not saved to group 1002"),
    ("failed", {"saved": [], "already": [], "missing": [1002], "message": "not saved to group(s) [1002]"},
     "save failed"),
    ("dry-run", {"would_send": {"method": "POST"}}, "save dry-run"),
])
def test_describe_says_the_outcome_of_a_record_and_of_its_history_row(journal, outcome, response, words):
    (p,) = policies(saver("a", 1001, 1002))
    action = planned(context(journal, [p]), p)
    assert described(SAVE, journal, action, outcome, response) == ("save not done", words, words)


def test_describe_a_plain_dict_and_nothing():
    assert SAVE.describe({}) == "save not done"  # e.g. a notification about a save that does not exist
    assert SAVE.describe({"outcome": "saved", "response": {"saved": [1001, 1002]}}) == "saved to group 1001, 1002"
    # journals of older versions, whose save could land as an invitation
    assert SAVE.describe({"outcome": "pending_invitation", "response": {"pending": [1003]}}) == \
        "save requested (invitation pending) for group 1003"
