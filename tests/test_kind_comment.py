"""The `comment` action kind (bot/actions/comment.py), hook by hook, on a real Journal and a Context built
directly (no cycle, no engine): what `plan` journals (one comment per main action, to the save groups),
when `waiting_for` holds it (its main action; a merged sibling's lead), the text (built from the journal
only; None when nothing changed on Fritz -> "skipped"), the merging of two policies' comments at one
alert into one lead, and `execute` against the local SkyPortal through the real SkyPortalClient
(posted; the same text again is merged by SkyPortal). Full cycles: tests/test_action_engine.py and
tests/test_actions_paths.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from conftest import SN
from kind_context import acting, alert, kind_context

from bot.actions.registry import KINDS
from bot.core.policies import evaluate
from bot.skyportal.client import SkyPortalClient

COMMENT = KINDS["comment"]
T0 = datetime(2023, 10, 5, 12, tzinfo=timezone.utc)
FOLLOWUP = {"allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3}}


ALERTS = [alert(0, 0.9), alert(1, 0.95)]  # both default policies hold at candid 2001


def policies(configs=None):
    """The configured policies (default: bts_p1 saves to 1001, bts_p2 requests SEDM)."""
    return acting(configs)


def context(journal, pols, services=None, now=T0, mode="live"):
    return kind_context(journal, pols, services, now=now, mode=mode)


def decide(ctx, policy, alerts=ALERTS, mode="live"):
    """Journal the alerts and `policy`'s decision on them, and plan its comments: (decision_id, comment ids)."""
    mv = policy.model_version
    ctx.journal.record_alerts([{**a, "model_version": mv} for a in alerts])
    d = evaluate(policy, ctx.journal.alerts_for_object(SN, mv))
    did, _ = ctx.journal.record_decision(d.policy, d.objectId, d.candid, d.jd, d.evidence, mode=mode)
    return did, [ctx.journal.start_action(did, "comment", req, key=key, mode=mode)
                 for key, req in COMMENT.plan(ctx, policy, d, {})]


def main(ctx, did, about, outcome=None, response=None, mode="live"):
    """The save or follow-up of decision `did`: pending, or finished with `outcome`."""
    aid = ctx.journal.start_action(did, about, {"obj_id": SN}, key=about, mode=mode)
    if outcome is not None:
        ctx.journal.finish_action(aid, outcome, response or {})
    return aid


SAVED = {"saved": [1001], "already": [], "missing": []}
REQUESTED = {"request_id": 5, "status": "submitted"}


def test_plan_one_comment_per_main_action_to_the_save_groups(journal):
    both, trig, p3 = policies([
        {"name": "both", "actions": {"save": {"group_ids": [1002, 1001]}, "followup": FOLLOWUP}},
        {"name": "trig", "peakmag_max": 18.5, "actions": {"followup": FOLLOWUP}},
        {"name": "p3", "actions": {"save": {"group_ids": [1001]}, "comment": False}}])
    ctx = context(journal, [both, trig, p3])
    d = evaluate(both, [{**a, "model_version": both.model_version} for a in ALERTS])
    groups = [1001, 1002]  # every policy's save groups, once, sorted
    assert COMMENT.plan(ctx, both, d, {}) == [
        ("comment:save", {"obj_id": SN, "about": "save", "group_ids": groups}),
        ("comment:followup", {"obj_id": SN, "about": "followup", "group_ids": groups})]
    assert COMMENT.plan(ctx, trig, d, {}) == [("comment:followup", {"obj_id": SN, "about": "followup",
                                                                     "group_ids": groups})]
    assert not COMMENT.enabled(p3) and COMMENT.enabled(both) is True  # comment: true is the default
    (alone,) = policies([{"name": "trig", "actions": {"followup": FOLLOWUP}}])
    assert COMMENT.plan(context(ctx.journal, [alone]), alone, d, {})[0][1]["group_ids"] is None  # no save group: sitewide


def test_waits_while_the_main_action_it_describes_is_pending(journal):
    p1, _ = policies()
    ctx = context(journal, [p1])
    did, (cid,) = decide(ctx, p1)
    save = main(ctx, did, "save")
    assert COMMENT.waiting_for(ctx, journal.action(cid)) == "waiting for the save it describes"
    journal.note_attempt(save, "HTTP 500")  # a failed attempt: still pending, still waited for
    assert COMMENT.waiting_for(ctx, journal.action(cid)) == "waiting for the save it describes"
    journal.finish_action(save, "saved", SAVED)
    assert COMMENT.waiting_for(ctx, journal.action(cid)) is None


def test_two_policies_at_one_alert_say_one_comment_the_other_is_merged(journal, skyportal):
    p1, p2 = policies()
    fritz = SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=None)
    ctx = context(journal, [p1, p2], {"skyportal": fritz})
    d1, (lead,) = decide(ctx, p1)
    d2, (other,) = decide(ctx, p2)
    assert journal.action(lead).candid == journal.action(other).candid == 2001
    save, follow = main(ctx, d1, "save"), main(ctx, d2, "followup")
    # the lead waits for every main action it describes, its sibling waits for the lead
    assert COMMENT.waiting_for(ctx, journal.action(lead)) == "waiting for the save it describes"
    assert COMMENT.waiting_for(ctx, journal.action(other)) == "waiting for the comment it is merged into"
    journal.finish_action(save, "saved", SAVED)
    assert COMMENT.waiting_for(ctx, journal.action(lead)) == "waiting for the followup it describes"
    journal.finish_action(follow, "posted", REQUESTED)
    assert COMMENT.waiting_for(ctx, journal.action(lead)) is None
    assert COMMENT.waiting_for(ctx, journal.action(other)) == "waiting for the comment it is merged into"
    assert COMMENT.would_send(ctx, journal.action(other)) == {"merged_into": lead}

    fritz.post_source(SN, [1001], 143.8, 83.97)  # what the save did on Fritz
    outcome, response = COMMENT.execute(ctx, journal.action(lead))
    assert outcome == "posted" and response["covers"] == [lead, other]
    mv = p1.model_version
    assert response["text"] == (f"BTSbot {mv}: saved to group 1001 by bts_p1 — 2 alerts > 0.5, max score 0.950; "
                                "SEDM follow-up requested (request 5) by bts_p2 — 2 alerts > 0.5, max score 0.950, "
                                "peak 18.00 mag, candid 2001")
    journal.finish_action(lead, outcome, response)
    assert COMMENT.waiting_for(ctx, journal.action(other)) is None  # its lead is done
    assert COMMENT.execute(ctx, journal.action(other)) == ("merged", {"merged_into": lead,
                                                                      "reason": f"said by comment {lead}"})
    posts = [r for r in skyportal.requests if r["method"] == "POST" and r["path"].endswith("/comments")]
    assert len(posts) == 1  # one comment for both


def test_a_pending_dry_run_comment_is_not_the_lead_of_a_live_one(journal):
    """A dry-run bot stopped between planning and running leaves its comment pending; the operator turns the
    same journal live, and the live decision takes the dry-run one over (same decision, same candid)."""
    p1, _ = policies()
    shadow = context(journal, [p1], mode="dry-run")
    decide(shadow, p1, mode="dry-run")  # planned in dry-run, never run
    ctx = context(journal, [p1])
    did, (cid,) = decide(ctx, p1)  # the live decision takes it over: its actions are planned afresh
    main(ctx, did, "save", "saved", SAVED)
    assert [a.mode for a in journal.actions_for_object(SN, "comment", pending=True)] == ["dry-run", "live"]
    assert COMMENT.waiting_for(ctx, journal.action(cid)) is None


def test_the_text_is_built_from_the_journal_only(journal):
    p1, _ = policies()
    ctx = context(journal, [p1])
    did, (cid,) = decide(ctx, p1)
    main(ctx, did, "save", "saved", SAVED)
    text = COMMENT.text(ctx, journal.action(cid))
    assert text == (f"BTSbot {p1.model_version}: saved to group 1001 by bts_p1 — 2 alerts > 0.5, "
                    "max score 0.950, peak 18.00 mag, candid 2001")
    journal.note_attempt(cid, "HTTP 502")  # a retry, a day later, by another process: the same bytes
    later = context(journal, [p1], now=T0 + timedelta(days=1))
    assert COMMENT.text(later, journal.action(cid)) == text
    assert COMMENT.would_send(later, journal.action(cid)) == {
        "method": "POST", "path": f"/api/sources/{SN}/comments", "body": {"text": text, "group_ids": [1001]}}
    # a policy no longer configured: no threshold to say; the version is the decision's evidence's
    unconfigured = context(journal, [])
    assert COMMENT.text(unconfigured, journal.action(cid)) == text.replace(" > 0.5", "")


@pytest.mark.parametrize("about, outcome, response", [
    ("save", "already_saved", {"saved": [], "already": [1001], "missing": []}),
    ("save", "failed", {"saved": [], "already": [], "missing": [1001], "message": "not saved to group(s) [1001]"}),
    ("followup", "skipped", {"reason": "already requested"}),
    ("followup", "ignored", {"message": "source is classified"})])
def test_nothing_changed_on_fritz_is_skipped_without_a_request(journal, about, outcome, response):
    pols = policies([{"name": "p", "peakmag_max": 18.5, "actions": {about: FOLLOWUP if about == "followup"
                                                                   else {"group_ids": [1001]}}}])
    ctx = context(journal, pols)  # no skyportal service: a POST would raise
    did, (cid,) = decide(ctx, pols[0])
    main(ctx, did, about, outcome, response)
    assert COMMENT.text(ctx, journal.action(cid)) is None
    assert COMMENT.execute(ctx, journal.action(cid)) == ("skipped", {"reason": "nothing changed on Fritz",
                                                                     "covers": [cid]})


def test_a_save_to_some_of_its_groups_is_said(journal):
    """A save that failed for one group but saved to another changed Fritz: the comment says both."""
    pols = policies([{"name": "p", "actions": {"save": {"group_ids": [1001, 1002]}}}])
    ctx = context(journal, pols)
    did, (cid,) = decide(ctx, pols[0])
    main(ctx, did, "save", "failed", {"saved": [1001], "already": [], "missing": [1002],
                                      "message": "not saved to group(s) [1002]"})
    text = COMMENT.text(ctx, journal.action(cid))
    assert text is not None and "saved to group 1001; not saved to group 1002 by p" in text


def test_a_skipped_lead_covers_its_merged_sibling(journal):
    p1, p2 = policies()
    ctx = context(journal, [p1, p2])
    d1, (lead,) = decide(ctx, p1)
    d2, (other,) = decide(ctx, p2)
    main(ctx, d1, "save", "already_saved", {"saved": [], "already": [1001], "missing": []})
    main(ctx, d2, "followup", "skipped", {"reason": "already requested"})
    outcome, response = COMMENT.execute(ctx, journal.action(lead))
    assert (outcome, response["covers"]) == ("skipped", [lead, other])
    journal.finish_action(lead, outcome, response)
    assert COMMENT.execute(ctx, journal.action(other))[0] == "merged"


def test_only_what_changed_is_said(journal):
    """Of a lead's main actions, only those that changed Fritz are in its text."""
    p1, p2 = policies()
    ctx = context(journal, [p1, p2])
    d1, (lead,) = decide(ctx, p1)
    d2, _ = decide(ctx, p2)
    main(ctx, d1, "save", "already_saved", {"saved": [], "already": [1001], "missing": []})
    main(ctx, d2, "followup", "updated", REQUESTED)
    text = COMMENT.text(ctx, journal.action(lead))
    assert "SEDM follow-up priority raised (request 5) by bts_p2" in text
    assert "bts_p1" not in text and "saved" not in text


def test_execute_posts_to_skyportal_and_a_retry_is_merged_by_it(journal, skyportal):
    p1, _ = policies()
    fritz = SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=None)
    ctx = context(journal, [p1], {"skyportal": fritz})
    did, (cid,) = decide(ctx, p1)
    main(ctx, did, "save", "saved", SAVED)
    fritz.post_source(SN, [1001], 143.8, 83.97)
    outcome, first = COMMENT.execute(ctx, journal.action(cid))
    assert outcome == "posted" and first["merged"] is False and "message" not in first
    assert first["text"] == COMMENT.text(ctx, journal.action(cid)) and first["covers"] == [cid]
    # killed before its outcome was journaled: the restarted bot posts the same bytes, SkyPortal merges them
    outcome, again = COMMENT.execute(context(journal, [p1], {"skyportal": fritz}, now=T0 + timedelta(hours=3)),
                                     journal.action(cid))
    assert outcome == "posted" and again["merged"] is True and again["comment_id"] == first["comment_id"]
    assert again["message"] == "Same comment already exists: merged by SkyPortal"
    posts = [r for r in skyportal.requests if r["method"] == "POST" and r["path"] == f"/api/sources/{SN}/comments"]
    assert [r["body"] for r in posts] == [{"text": first["text"], "group_ids": [1001]}] * 2
    stored = requests.get(f"{skyportal.url}/api/sources/{SN}/comments", timeout=5,
                          headers={"Authorization": f"token {skyportal.token}"}).json()["data"]
    assert [c["text"] for c in stored] == [first["text"]]  # one comment on Fritz
