"""Every action path on Fritz, against the local SkyPortal: refusals, faults, restarts."""

import pytest
import requests
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.config import load_config
from bot.cycle import run_cycle
from bot.runtime import open_runtime


@pytest.fixture
def make_runtime(example_kowalski, skyportal, write_config, onnx_scorer):
    opened = []

    def make(**overrides):
        rt = open_runtime(load_config(write_config(example_kowalski, skyportal, **overrides)), scorer=onnx_scorer)
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


def cycle(rt):
    return run_cycle(rt, since_jd=EXAMPLE_SINCE, until_jd=EXAMPLE_UNTIL)


def outcomes(report):
    return {(a.policy, a.action): a.outcome for a in report.actions}


def calls(sim, method, path):
    return [r for r in sim.requests if r["method"] == method and r["path"] == path]


def save_comments(sim):
    """The comment POSTs that describe bts_p1's save of SN (not the follow-up's comments)."""
    return [r for r in calls(sim, "POST", f"/api/sources/{SN}/comments") if "bts_p1" in r["body"]["text"]]


def fritz_requests(sim):
    r = requests.get(f"{sim.url}/api/followup_request", params={"sourceID": SN},
                     headers={"Authorization": f"token {sim.token}"}, timeout=5)
    return r.json()["data"]["followup_requests"]


def test_followup_ignored_when_classified(make_runtime, skyportal):
    skyportal.set_obj_flags(SN, classified=True)
    rt = make_runtime()
    report = cycle(rt)
    assert outcomes(report)[("bts_p2", "followup")] == "ignored"
    action = next(a for a in rt.journal.actions_for(rt.journal.get_decision("bts_p2", SN)["id"]) if a["action"] == "followup")
    assert action["status"] == "done" and "classif" in action["response"]["message"].lower()
    assert fritz_requests(skyportal) == []
    assert outcomes(report)[("bts_p1", "save")] == "saved"  # the save is unaffected


def test_facility_rejection_is_an_outcome(make_runtime, skyportal):
    skyportal.set_facility_behaviour(2001, "reject")
    report = cycle(make_runtime())
    assert outcomes(report)[("bts_p2", "followup")] == "rejected"
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1


def test_facility_failure_400_is_journaled_not_retried(make_runtime, skyportal):
    skyportal.set_facility_behaviour(2001, "fail")
    rt = make_runtime()
    assert outcomes(cycle(rt))[("bts_p2", "followup")] == "failed"
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1
    assert outcomes(cycle(rt)) == {}  # a failed action is final: the next cycle does not re-post
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1


def test_bad_payload_refused_by_fritz_is_a_failed_outcome(make_runtime, skyportal):
    """A payload that passes our checks but Fritz refuses (400): journaled as failed, nothing else sent."""
    rt = make_runtime(policies=[{"name": "bts_p2", "actions": {"save": {"group_ids": [1001]}, "followup": {
        "allocation_id": 2001, "payload": {"observation_type": "Mix 'n Match", "priority": 3,
                                           "observation_choices": ["IFU"]}}}}])
    skyportal.set_facility_behaviour(2001, "fail")
    assert outcomes(cycle(rt))[("bts_p2", "followup")] == "failed"
    post = calls(skyportal, "POST", "/api/followup_request")
    assert len(post) == 1 and post[0]["status"] == 400


def test_429_bursts_are_absorbed(make_runtime, skyportal):
    skyportal.faults.retry_after_s = 0.05
    skyportal.faults.push("429", "429", "429", match="POST /api/sources")
    skyportal.faults.push("html:502", match="GET /api/followup_request")
    report = cycle(make_runtime())
    assert outcomes(report)[("bts_p1", "save")] == "saved"
    assert outcomes(report)[("bts_p2", "followup")] == "posted"
    statuses = [r["status"] for r in calls(skyportal, "POST", "/api/sources")]
    assert statuses == [429, 429, 429, 200]


def test_500s_leave_the_action_pending_and_the_next_cycle_finishes_it(make_runtime, skyportal):
    skyportal.faults.push(*["500"] * 10, match="POST /api/sources")  # that endpoint only, not the comments one
    rt = make_runtime()
    first = cycle(rt)
    assert outcomes(first)[("bts_p1", "save")] is None  # transient: still pending
    assert outcomes(first)[("bts_p1", "comment")] is None  # waits for the save it describes
    assert save_comments(skyportal) == []  # ... without sending it
    pending = rt.journal.unfinished_actions()
    assert {a["action"] for a in pending} >= {"save", "comment"}
    assert all("500" in (a["error"] or "") for a in pending if a["action"] == "save")
    skyportal.faults.clear()
    second = cycle(rt)
    assert outcomes(second)[("bts_p1", "save")] == "saved"
    assert outcomes(second)[("bts_p1", "comment")] == "posted"
    assert [r["status"] for r in save_comments(skyportal)] == [200]  # sent once, after the save
    assert rt.journal.unfinished_actions() == []


def test_timeout_after_fritz_committed_makes_no_second_request(make_runtime, skyportal):
    skyportal.faults.hang_s = 4.0  # longer than the client's follow-up timeout (2 s in these configs)
    skyportal.faults.push("timeout_after", match="POST /api/followup_request")
    rt = make_runtime()
    report = cycle(rt)
    assert outcomes(report)[("bts_p2", "followup")] == "posted"
    follow = next(a for a in report.actions if a.action == "followup")
    assert "confirmed by listing" in follow.detail  # the answer never came: the listing decided
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1
    assert len(fritz_requests(skyportal)) == 1
    cycle(rt)
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1


def test_5xx_without_commit_is_replanned_after_listing(make_runtime, skyportal):
    skyportal.faults.push("503", match="POST /api/followup_request")
    rt = make_runtime()
    assert outcomes(cycle(rt))[("bts_p2", "followup")] is None  # unknown, not in the listing: pending
    assert fritz_requests(skyportal) == []
    assert outcomes(cycle(rt))[("bts_p2", "followup")] == "posted"
    assert len(fritz_requests(skyportal)) == 1


def test_existing_lower_priority_request_is_raised_not_duplicated(make_runtime, skyportal):
    r = requests.post(f"{skyportal.url}/api/sources", json={"id": SN, "ra": 143.8, "dec": 83.97, "group_ids": [1001]},
                      headers={"Authorization": f"token {skyportal.token}"}, timeout=5)
    assert r.status_code == 200
    r = requests.post(f"{skyportal.url}/api/followup_request", headers={"Authorization": f"token {skyportal.token}"},
                      json={"obj_id": SN, "allocation_id": 2001, "payload": {
                          "observation_type": "IFU", "priority": 2, "start_date": "2023-10-05T00:00:00.000",
                          "end_date": "2023-10-12T00:00:00.000"}}, timeout=5)
    assert r.status_code == 200, r.text
    report = cycle(make_runtime())
    assert outcomes(report)[("bts_p2", "followup")] == "updated"
    assert outcomes(report)[("bts_p1", "save")] == "already_saved"  # read first: nothing posted
    assert len(calls(skyportal, "POST", "/api/sources")) == 1  # the test's own
    (text,) = [r["body"]["text"] for r in calls(skyportal, "POST", f"/api/sources/{SN}/comments")]
    assert "priority raised" in text and "saved" not in text  # the comment says what changed, only that
    reqs = fritz_requests(skyportal)
    assert len(reqs) == 1 and reqs[0]["payload"]["priority"] == 3
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1  # only the one made above


def test_a_fresh_journal_against_a_fritz_that_holds_everything_changes_nothing(make_runtime, skyportal):
    """A new bot (fresh journal) against a Fritz where an earlier bot saved SN 2023tyk, requested SEDM and
    annotated it: nothing is posted (no save, no request, no comment); the annotation is updated in place."""
    cycle(make_runtime())
    n = len(skyportal.requests)
    report = cycle(make_runtime(state={"path": "fresh.sqlite"}))
    got = outcomes(report)
    assert got[("bts_p1", "save")] == "already_saved" and got[("bts_p2", "followup")] == "skipped"
    assert got[("bts_p1", "comment")] == "skipped" and got[("bts_p1", "annotation")] == "updated"
    sent = [(r["method"], r["path"].rsplit("/", 1)[0] if r["method"] == "PUT" else r["path"])
            for r in skyportal.requests[n:] if r["path"] != "/api/internal/profile"]
    writes = [x for x in sent if x[0] != "GET"]
    assert writes == [("PUT", f"/api/sources/{SN}/annotations")]
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1 and len(fritz_requests(skyportal)) == 1


def test_restart_between_decision_and_action_acts_once(make_runtime, skyportal, monkeypatch):
    rt = make_runtime()

    def crash(stop=None):
        raise KeyboardInterrupt("killed after the decisions were journaled")

    monkeypatch.setattr(rt.actor, "run_pending", crash)
    with pytest.raises(KeyboardInterrupt):
        cycle(rt)
    assert skyportal.writes() == []
    assert {a["action"] for a in rt.journal.unfinished_actions()} == {"save", "followup", "comment", "annotation"}
    rt.close()

    report = cycle(make_runtime())  # the restarted bot: the alerts are known, the actions resume
    assert report.n_new == 0
    assert outcomes(report)[("bts_p1", "save")] == "saved"
    assert outcomes(report)[("bts_p2", "followup")] == "posted"
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1


def test_restart_after_the_post_before_its_outcome_acts_once(make_runtime, skyportal, monkeypatch):
    rt = make_runtime()
    real_finish = rt.journal.finish_action

    def die_on_followup(action_id, outcome, *a, **k):
        if any(a["id"] == action_id and a["action"] == "followup" for a in rt.journal.unfinished_actions()):
            raise KeyboardInterrupt("killed between the POST and journaling its outcome")
        return real_finish(action_id, outcome, *a, **k)

    monkeypatch.setattr(rt.journal, "finish_action", die_on_followup)
    with pytest.raises(KeyboardInterrupt):
        cycle(rt)
    assert len(fritz_requests(skyportal)) == 1
    monkeypatch.undo()
    rt.close()

    report = cycle(make_runtime())
    # its own request (stored with the defaults SEDM adds to the payload) is recognised: posted, once
    assert outcomes(report)[("bts_p2", "followup")] == "posted"
    assert len(calls(skyportal, "POST", "/api/followup_request")) == 1
    texts = [r["body"]["text"] for r in calls(skyportal, "POST", f"/api/sources/{SN}/comments")]
    assert sum("SEDM follow-up requested" in t for t in texts) == 1 and not any("skipped" in t for t in texts)


def test_tokens_never_reach_the_journal(make_runtime, skyportal, example_kowalski):
    rt = make_runtime()
    cycle(rt)
    path = rt.config.journal_path
    rt.close()
    data = path.read_bytes() + b"".join(p.read_bytes() for p in path.parent.glob(path.name + "-*"))
    assert skyportal.token.encode() not in data and example_kowalski.token.encode() not in data


def test_an_unexpected_error_in_one_action_does_not_block_the_others(make_runtime, skyportal, monkeypatch):
    rt = make_runtime()

    def broken(*args, **kwargs):
        raise RuntimeError("unexpected answer")

    monkeypatch.setattr(rt.skyportal, "post_comment", broken)
    report = cycle(rt)
    assert outcomes(report)[("bts_p1", "comment")] is None  # kept pending, with the error journaled
    assert outcomes(report)[("bts_p2", "followup")] == "posted" and outcomes(report)[("bts_p1", "save")] == "saved"
    pending = rt.journal.unfinished_actions()
    assert {a["action"] for a in pending} == {"comment"} and "RuntimeError" in pending[0]["error"]
    monkeypatch.undo()
    assert outcomes(cycle(rt))[("bts_p1", "comment")] == "posted"  # resumed once the cause is gone
