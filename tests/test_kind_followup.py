"""The follow-up action kind (bot/actions/followup.py), hook by hook: `checks` (every policy's allocation),
`plan` (the request copied from the policy's followup config), `waiting_for` (never before a pending save of
its source, by any policy), `would_send` (the SEDM request dated from `ctx.now`), `execute` through the real
SkyPortalClient against the local SkyPortal stand-in (posted; the listing not read when this run's save created
the source; a request already on Fritz skipped or its priority raised as `plan_followup` and `priority_order`
say; its own request recognised after a restart without a second POST; a source not on Fritz yet kept
pending; `over_budget` past `max_per_night` posted on the allocation this Palomar night), `describe`, and the
module's pure helpers `own_request`, `missing_object` and `allocations`.

Each hook is called on its own with a `Context` and journal rows built here (no cycle, no engine)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import SN
from kind_context import acting, described, kind_context

from bot.actions.followup import Followup, allocations, missing_object, own_request
from bot.actions.policy import ActingPolicy
from bot.actions.save import Save
from bot.core.followup_rules import plan_followup
from bot.core.policies import Decision
from bot.journal import Journal
from bot.skyportal.client import SkyPortalClient
from bot.timeutil import palomar_night

NOW = datetime(2023, 10, 5, 11, 0, tzinfo=timezone.utc)  # 04:00 at Palomar: the night of Oct 4-5
OTHER = "ZTF23abdsfms"
FOLLOWUP, SAVE = Followup(), Save()
POST = ("POST", "/api/followup_request")


def policies(*specs):
    """Acting policies from the config: `specs` are `policies[]` entries (default: the shipped policies)."""
    return acting(list(specs))


def follower(name, priority=3, allocation=2001, **cfg):
    return {"name": name, "actions": {"followup": {"allocation_id": allocation, "payload": {
        "observation_type": "IFU", "priority": priority}, **cfg}}}


def saver(name):
    return {"name": name, "actions": {"save": {"group_ids": [1001]}}}


def context(journal, pols, client=None, mode="live", now=NOW):
    return kind_context(journal, pols, {"skyportal": client} if client else {}, now=now, mode=mode)


def decision(policy, oid=SN):
    return Decision(policy=policy.name, objectId=oid, candid=2001, jd=2460222.5, n_counting=2,
                    counting_candids=(2000, 2001), max_score=0.95, score=0.95, magpsf=18.0, peakmag_so_far=18.0,
                    age=1.0, model_version=policy.model_version)


def planned(ctx, kind, policy, oid=SN):
    """Journal the decision and the action `kind` plans for it (as `Actor.plan` does); the ActionRecord."""
    d = decision(policy, oid)
    did, _ = ctx.journal.record_decision(d.policy, d.objectId, d.candid, d.jd, d.evidence, mode=ctx.mode)
    ((key, request),) = kind.plan(ctx, policy, d, {"candid": 2001, "extra": {"ra": 143.8, "dec": 83.97}})
    return ctx.journal.action(ctx.journal.start_action(did, kind.name, request, key=key, mode=ctx.mode))


def on_fritz(client, oid=SN):
    """The source saved on Fritz before the bot acts (a follow-up request needs the Obj)."""
    assert client.post_source(oid, [1001], ra=143.8, dec=83.97).saved == [1001]


def sent(sim, method, path):
    return [r for r in sim.requests if r["method"] == method and r["path"] == path]


class Clock:
    """The journal's clock (what `finished` times say), set by the test."""

    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at.isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.fixture
def client(skyportal):
    with SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=50.0, backoff_s=0.01,
                         followup_timeout_s=2.0) as c:
        yield c


# --- the pure helpers -------------------------------------------------------------------------------------------
def test_allocations_and_checks_are_every_policys_allocation():
    pols = policies(follower("a", allocation=2002), follower("b"), follower("c", 4), saver("d"))
    bare = ActingPolicy("bare", model_version=pols[0].model_version)  # a rule without actions
    assert allocations(pols + [bare]) == [2001, 2002]  # sorted, once each
    assert FOLLOWUP.checks(pols) == {"allocations": [2001, 2002]} and FOLLOWUP.checks(pols[3:]) == {"allocations": []}
    assert FOLLOWUP.shares(pols) == {}


SENT = {"obj_id": SN, "allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3,
                                                         "start_date": "2023-10-05T11:00:00.000000",
                                                         "end_date": "2023-10-12T11:00:00.000000"}}
STORED = {"id": 5, "obj_id": SN, "allocation_id": 2001, "status": "submitted",  # with SEDM's defaults (SP 3.7)
          "payload": {**SENT["payload"], "exposure_time": -1, "maximum_airmass": 2.8, "maximum_fwhm": 10}}


@pytest.mark.parametrize("other", [
    {**STORED, "payload": {**STORED["payload"], "start_date": "2023-10-04T09:00:00.000000"}},  # another send
    {**STORED, "allocation_id": 2002},
    {**STORED, "obj_id": OTHER},
    {**STORED, "status": "deleted"},  # never claimed: production never re-triggers a deleted request
    {**STORED, "payload": None},
], ids=["other-dates", "other-allocation", "other-source", "deleted", "no-payload"])
def test_own_request_is_the_listed_request_holding_every_field_sent(other):
    assert own_request([STORED], SENT) is STORED
    assert own_request([other], SENT) is None
    assert own_request([other, STORED], SENT) is STORED


def test_own_request_needs_a_sent_body_with_a_payload():
    assert own_request([STORED], None) is None  # nothing was marked as sending
    assert own_request([STORED], {"obj_id": SN, "allocation_id": 2001}) is None


@pytest.mark.parametrize("message, missing", [
    (f"Error submitting follow-up request: Could not find source with ID {SN}.", True),  # the stand-in's, SP 3.1
    (f"Could not find obj {SN}", True),
    (f"Obj {SN} not found", True),
    ("Source not found", True),
    ("Error submitting follow-up request: Could not find allocation with ID 2001.", False),
    ("Followup request 5 not found.", False),
    ("There is no source for one or more of the source_group_ids specified as a constraint, not submitting "
     "request.", False),
    ("", False),
    (None, False),
])
def test_missing_object_tells_a_source_not_on_fritz_from_other_refusals(message, missing):
    assert missing_object(message) is missing


# --- planning -----------------------------------------------------------------------------------------------------
def test_plan_copies_the_policys_followup_config(journal):
    (p,) = policies(follower("a", 2, validity_days=3, ignore_source_group_ids=[1002], target_group_ids=[1001],
                             priority_order="desc"))
    action = planned(context(journal, [p]), FOLLOWUP, p)
    assert (action.action, action.key, action.status) == ("followup", "followup", "pending")
    assert action.request == {"obj_id": SN, "allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 2},
                              "validity_days": 3.0, "ignore_source_group_ids": [1002], "target_group_ids": [1001],
                              "priority_order": "desc"}
    shipped = {p.name: p for p in policies()}["bts_p2"]  # the defaults
    ((key, request),) = FOLLOWUP.plan(context(journal, [shipped]), shipped, decision(shipped), {})
    assert key == "followup" and request == {
        "obj_id": SN, "allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3},
        "validity_days": 7.0, "ignore_source_group_ids": [], "target_group_ids": [], "priority_order": "asc"}


# --- waiting_for ----------------------------------------------------------------------------------------------------
def test_it_waits_for_a_pending_save_of_its_source_by_any_policy(journal):
    both = follower("both")
    both["actions"]["save"] = {"group_ids": [1001]}  # a policy that saves and triggers
    s, f, both = policies(saver("s"), follower("f"), both)
    ctx = context(journal, [s, f, both])
    follow = planned(ctx, FOLLOWUP, f)
    assert FOLLOWUP.waiting_for(ctx, follow) is None  # no save of the source planned
    planned(ctx, SAVE, s, OTHER)
    assert FOLLOWUP.waiting_for(ctx, follow) is None  # another source's save is no reason
    save = planned(ctx, SAVE, s)
    assert FOLLOWUP.waiting_for(ctx, follow) == f"waiting for the save of {SN} by s"  # another policy's
    journal.finish_action(save.id, "saved", {"saved": [1001], "already": [], "missing": []})
    assert FOLLOWUP.waiting_for(ctx, follow) is None
    own_save = planned(ctx, SAVE, both)
    assert FOLLOWUP.waiting_for(ctx, follow) == f"waiting for the save of {SN} by both"
    assert FOLLOWUP.waiting_for(ctx, planned(ctx, FOLLOWUP, both)) == f"waiting for the save of {SN} by both"
    journal.finish_action(own_save.id, "failed", {"message": "refused"})  # finished, even failed: no wait
    assert FOLLOWUP.waiting_for(ctx, follow) is None


def test_a_live_followup_does_not_wait_for_a_dry_run_save_no_live_bot_runs(journal):
    s, f = policies(saver("s"), follower("f"))
    planned(context(journal, [s, f], mode="dry-run"), SAVE, s)  # a dry-run bot stopped after planning
    live = context(journal, [s, f], mode="live")
    follow = planned(live, FOLLOWUP, f)
    assert [a.id for a in journal.unfinished_actions("live")] == [follow.id]  # the dry-run save is not live's
    assert FOLLOWUP.waiting_for(live, follow) is None


# --- would_send -----------------------------------------------------------------------------------------------------
def test_would_send_dates_the_sedm_request_from_ctx_now(journal):
    (p,) = policies(follower("a", validity_days=2.5, target_group_ids=[1001], ignore_source_group_ids=[1002]))
    ctx = context(journal, [p], mode="dry-run")
    action = planned(ctx, FOLLOWUP, p)
    assert FOLLOWUP.would_send(ctx, action) == {"method": "POST", "path": "/api/followup_request", "body": {
        "obj_id": SN, "allocation_id": 2001,
        "payload": {"observation_type": "IFU", "priority": 3, "start_date": "2023-10-05T11:00:00.000000",
                    "end_date": "2023-10-07T23:00:00.000000"},
        "not_if_duplicates": True, "not_if_classified": True, "not_if_spectra_exist": True,
        "not_if_tns_classified": True, "radius": 0.5, "target_group_ids": [1001], "ignore_source_group_ids": [1002]}}
    later = context(journal, [p], mode="dry-run", now=NOW + timedelta(days=1))  # dated when sent, not planned
    assert FOLLOWUP.would_send(later, action)["body"]["payload"]["start_date"] == "2023-10-06T11:00:00.000000"
    shipped = {q.name: q for q in policies()}["bts_p2"]
    body = FOLLOWUP.would_send(ctx, planned(ctx, FOLLOWUP, shipped))["body"]
    assert "target_group_ids" not in body and "ignore_source_group_ids" not in body  # empty lists are not sent


# --- execute, through the real client against the local SkyPortal ---------------------------------------------------
def test_a_new_request_is_posted_after_reading_the_listing(journal, skyportal, client):
    (p,) = policies(follower("a"))
    on_fritz(client)
    ctx = context(journal, [p], client)
    action = planned(ctx, FOLLOWUP, p)
    n = len(skyportal.requests)
    outcome, response = FOLLOWUP.execute(ctx, action)
    assert [(r["method"], r["path"]) for r in skyportal.requests[n:]] == [("GET", "/api/followup_request"), POST]
    (stored,) = client.followup_requests(SN)
    assert outcome == "posted" and stored["status"] == "submitted"
    assert response == {"request": FOLLOWUP.would_send(ctx, action)["body"], "request_id": stored["id"],
                        "status": "submitted", "message": None, "http_status": 200}  # what a dry-run said
    assert journal.action(action.id).attempt["body"] == response["request"]  # marked before the POST


def test_after_this_runs_save_created_the_source_no_listing_is_read(journal, skyportal, client):
    s, a, b = policies(saver("s"), follower("a"), follower("b"))
    ctx = context(journal, [s, a, b], client)
    assert SAVE.execute(ctx, planned(ctx, SAVE, s))[0] == "saved"  # a new Obj: it has no request
    outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, a))
    assert outcome == "posted"
    outcome, again = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, b))  # another policy, the same run
    assert outcome == "skipped" and again["request_id"] == response["request_id"]  # seen in the run's view
    assert sent(skyportal, "GET", "/api/followup_request") == [] and len(sent(skyportal, *POST)) == 1


def test_the_request_fritz_posts_on_a_new_save_is_not_doubled(journal, skyportal, client):
    """Fritz's DefaultFollowupRequest: saving a new source to a group makes SkyPortal post a SEDM request
    itself (SP 3.8), which the run's view of a source its save created does not hold. The bot's POST carries
    `not_if_duplicates`, so SkyPortal ignores it: one request on Fritz, the bot's follow-up "ignored"."""
    skyportal.add_default_followup_request(2001, {"observation_type": "IFU", "priority": 2},
                                           {"group_id": 1001, "name": "^ZTF"}, comment="auto SEDM")
    s, a = policies(saver("s"), follower("a"))
    ctx = context(journal, [s, a], client)
    assert SAVE.execute(ctx, planned(ctx, SAVE, s))[0] == "saved"
    (auto,) = client.followup_requests(SN)  # Fritz's own request
    outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, a))
    assert outcome == "ignored" and "already a follow-up request" in response["message"]
    assert [r["id"] for r in client.followup_requests(SN)] == [auto["id"]]
    assert sent(skyportal, *POST)[0]["body"]["not_if_duplicates"] is True


@pytest.mark.parametrize("order, priority, expected", [
    ("asc", 3, "skipped"), ("asc", 4, "updated"), ("desc", 4, "skipped"), ("desc", 2, "updated")])
def test_a_request_already_on_fritz_is_skipped_or_its_priority_raised(journal, skyportal, client, order, priority,
                                                                      expected):
    first, second = policies(follower("a", 3, priority_order=order), follower("b", priority, priority_order=order))
    on_fritz(client)
    assert FOLLOWUP.execute(context(journal, [first, second], client), planned(
        context(journal, [first, second]), FOLLOWUP, first))[0] == "posted"
    (existing,) = client.followup_requests(SN)
    ctx = context(journal, [first, second], client)  # a later run
    outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, second))
    plan = plan_followup([existing], 2001, second.actions.followup.payload, NOW, priority_order=order)
    assert outcome == expected and response["reason"] == plan.reason and response["request_id"] == existing["id"]
    (now,) = client.followup_requests(SN)
    assert now["payload"]["priority"] == (priority if expected == "updated" else 3)
    assert len(sent(skyportal, *POST)) == 1  # never a second request
    assert len(sent(skyportal, "PUT", f"/api/followup_request/{existing['id']}")) == (expected == "updated")
    if expected == "updated":
        assert response["payload"] == plan.update_payload == {**existing["payload"], "priority": priority}


def test_after_a_restart_its_own_request_is_recognised_without_a_second_post(journal, skyportal, client):
    (p,) = policies(follower("a"))
    on_fritz(client)
    ctx = context(journal, [p], client)
    action = planned(ctx, FOLLOWUP, p)
    body = FOLLOWUP.would_send(ctx, action)["body"]  # what execute sends at NOW
    journal.mark_sending(action.id, {"body": body})  # journaled just before the POST ...
    posted = client.submit_followup(body)  # ... which landed; the bot was killed before journaling its outcome
    assert posted.outcome == "posted"
    restarted = context(journal, [p], client, now=NOW + timedelta(minutes=10))
    n = len(skyportal.requests)
    outcome, response = FOLLOWUP.execute(restarted, journal.action(action.id))
    assert outcome == "posted" and response["request"] == body
    assert response["request_id"] == posted.request_id and response["status"] == "submitted"
    assert "own request recognised in the listing after a restart" in response["message"]
    assert [(r["method"], r["path"]) for r in skyportal.requests[n:]] == [("GET", "/api/followup_request")]


@pytest.mark.parametrize("facility", ["reject", "fail"])
def test_a_recognised_request_keeps_the_outcome_its_post_had(journal, skyportal, client, facility):
    (p,) = policies(follower("a"))
    on_fritz(client)
    skyportal.set_facility_behaviour(2001, facility)
    ctx = context(journal, [p], client)
    action = planned(ctx, FOLLOWUP, p)
    body = FOLLOWUP.would_send(ctx, action)["body"]
    journal.mark_sending(action.id, {"body": body})
    answer = client.submit_followup(body)  # the answer the killed bot never journaled
    assert answer.outcome == {"reject": "rejected", "fail": "failed"}[facility]
    outcome, _ = FOLLOWUP.execute(context(journal, [p], client), journal.action(action.id))
    assert outcome == answer.outcome


def test_an_unclear_answer_is_not_confirmed_by_a_failed_submission(journal, skyportal):
    (p,) = policies(follower("a"))
    with SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=50.0, backoff_s=0.01,
                         followup_timeout_s=0.3) as client:
        on_fritz(client)
        skyportal.set_facility_behaviour(2001, "fail")
        skyportal.faults.hang_s = 0.6  # the server commits the failed row, then answers too late
        skyportal.faults.push("timeout_after", match="POST /api/followup_request")
        ctx = context(journal, [p], client, now=datetime.now(timezone.utc))
        outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, p))
        (row,) = client.followup_requests(SN)
    assert row["status"].startswith("failed to submit")
    assert outcome != "posted", response


def test_a_source_not_on_fritz_yet_keeps_the_request_pending(journal, skyportal, client):
    (p,) = policies(follower("a"))
    ctx = context(journal, [p], client)
    outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, p))
    assert outcome is None  # the engine notes the attempt and tries again next cycle
    assert f"Could not find source with ID {SN}" in response["message"]
    assert response["message"].endswith("(the source is not on Fritz yet); will retry")
    assert client.followup_requests(SN) == [] and len(sent(skyportal, *POST)) == 1


def test_over_budget_once_max_per_night_requests_were_posted_tonight_on_the_allocation(tmp_path, skyportal, client):
    clock = Clock(NOW)
    night_start, night_end = palomar_night(NOW)
    with Journal(tmp_path / "journal.sqlite", clock=clock) as journal:
        (p,) = policies(follower("a", max_per_night=2))

        def posted_before(oid, allocation, at):
            clock.at = at
            did, _ = journal.record_decision("earlier", oid, 1, 2460222.0, {}, mode="live")
            aid = journal.start_action(did, "followup", {"obj_id": oid, "allocation_id": allocation}, mode="live")
            journal.finish_action(aid, "posted", {"request_id": 1})

        posted_before("ZTF23aaaaaaa", 2001, night_start - timedelta(minutes=1))  # last night: not counted
        posted_before("ZTF23aaaaaab", 2002, NOW - timedelta(hours=1))  # another allocation: not counted
        posted_before("ZTF23aaaaaac", 2001, night_start)  # tonight: 1 of 2
        clock.at = NOW
        on_fritz(client)
        ctx = context(journal, [p], client)
        first = planned(ctx, FOLLOWUP, p)
        outcome, response = FOLLOWUP.execute(ctx, first)
        assert outcome == "posted"
        journal.finish_action(first.id, outcome, response)  # tonight: 2 of 2
        ctx = context(journal, [p], client)
        outcome, response = FOLLOWUP.execute(ctx, planned(ctx, FOLLOWUP, p, OTHER))
    assert outcome == "over_budget"
    assert {k: response[k] for k in ("posted_tonight", "max_per_night", "allocation_id")} == {
        "posted_tonight": 2, "max_per_night": 2, "allocation_id": 2001}
    assert response["message"].startswith("over budget: 2 of max_per_night 2 requests already posted on allocation "
                                          f"2001 this Palomar night ({night_start:%Y-%m-%d %H:%M} - "
                                          f"{night_end:%H:%M} UTC)")
    assert len(sent(skyportal, *POST)) == 1  # the over-budget one was never sent


# --- describe -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("outcome, response, words", [
    ("posted", {"request_id": 7, "status": "submitted"}, "SEDM follow-up requested (request 7)"),
    ("updated", {"request_id": 7, "reason": "raising it to 4"}, "SEDM follow-up priority raised (request 7)"),
    ("skipped", {"reason": "an equivalent request 7 (submitted) is already submitted", "request_id": 7},
     "SEDM follow-up skipped: an equivalent request 7 (submitted) is already submitted"),
    ("ignored", {"message": "Source has already been classified"},
     "SEDM follow-up ignored: Source has already been classified"),
    ("over_budget", {"message": "over budget: 2 of max_per_night 2"}, "SEDM follow-up not sent: over budget: 2 of "
                                                                      "max_per_night 2"),
    ("dry-run", {"would_send": {"method": "POST"}}, "SEDM follow-up dry-run"),
])
def test_describe_says_the_outcome_of_a_record_and_of_its_history_row(journal, outcome, response, words):
    (p,) = policies(follower("a"))
    action = planned(context(journal, [p]), FOLLOWUP, p)
    assert described(FOLLOWUP, journal, action, outcome, response) == ("SEDM follow-up not done", words, words)


def test_describe_a_plain_dict_and_nothing():
    assert FOLLOWUP.describe({}) == "SEDM follow-up not done"
    assert FOLLOWUP.describe({"outcome": "failed", "response": {"message": "Unknown field"}}) == \
        "SEDM follow-up failed: Unknown field"
