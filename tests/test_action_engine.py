"""The action engine (bot/actions/) driven with decisions and a recording Fritz client: no model, no stand-in
SkyPortal. The `notify` kind posts to the recording webhook on loopback (bot/sim/webhook.py)."""

from __future__ import annotations

import threading

import pytest

from bot.actions import KINDS, Actor
from bot.actions.notify import Webhook, service_name
from bot.config import load_config
from bot.core.policies import evaluate, score_text
from bot.journal import Journal
from bot.runtime import configured_policies
from bot.sim.webhook import WebhookSim
from bot.skyportal.client import CommentResult, FollowupResult, SaveResult, SourceView
from bot.skyportal.errors import SkyPortalError

OID = "ZTF23abhvlji"
FRITZ = "https://fritz.example"
ENV = "BTSBOT_SLACK_WEBHOOK"


class RecordingFritz:
    """The SkyPortalClient methods the kinds call, recorded; `fail[name]` holds exceptions to raise first."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.fail: dict[str, list[Exception]] = {}
        self.requests: list[dict] = []
        self.comments: dict[str, int] = {}  # text -> id: SkyPortal merges an identical comment
        self.exists, self.groups, self.annotations = False, set(), []  # what Fritz holds of the source

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    def names(self):
        return [c[0] for c in self.calls]

    def source_view(self, obj_id):
        self._call("source_view", obj_id)
        if not (self.exists or self.requests):  # a request exists only for an existing Obj
            return SourceView(obj_id, False)
        return SourceView(obj_id, True, {g: {"id": g, "active": True} for g in self.groups},
                          [dict(r) for r in self.requests if "deleted" not in r["status"]], list(self.annotations))

    def post_source(self, obj_id, group_ids, ra=None, dec=None):
        self._call("save_source", obj_id, list(group_ids))
        self.exists = True
        self.groups |= set(group_ids)
        return SaveResult(saved=list(group_ids))

    def followup_requests(self, obj_id, allocation_id=None):
        self._call("followup_requests", obj_id)
        return [dict(r) for r in self.requests]

    def submit_followup(self, body):
        self._call("submit_followup", body)
        rid = len(self.requests) + 1
        payload = {"exposure_time": -1, "maximum_airmass": 2.8, "maximum_fwhm": 10, **body["payload"]}  # SP 3.7
        self.requests.append({"id": rid, "obj_id": body["obj_id"], "allocation_id": body["allocation_id"],
                              "payload": payload, "status": "submitted"})
        return FollowupResult("posted", rid, "submitted", None, None, 200)

    def update_followup(self, request_id, obj_id, allocation_id, payload):
        self._call("update_followup", request_id, payload)
        return {}

    def post_comment(self, obj_id, text, group_ids=None):
        self._call("comment", obj_id, text)
        merged = text in self.comments
        self.comments.setdefault(text, len(self.calls))
        return CommentResult(self.comments[text], merged)

    def annotate(self, obj_id, origin, data, group_ids=None, annotation_id=None):
        self._call("upsert_annotation", obj_id, data, annotation_id)
        return 7, annotation_id is None


def alert(i, score, mag=18.0, peak=None):
    return {"candid": 2000 + i, "objectId": OID, "jd": 2460220.5 + i, "score": score, "status": "ok",
            "magpsf": mag, "peakmag_so_far": mag if peak is None else peak, "age": float(i), "drb": 0.99,
            "extra": {"ra": 143.8, "dec": 83.97}}


def policies(**overrides):
    return configured_policies(load_config(overrides=overrides or None, env={}))


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite") as j:
        yield j


def act(journal, pols, alerts, services, mode="live", **kw):
    """What the cycle does: journal the alerts, plan every decision and the annotation, then run."""
    mv = pols[0].model_version
    actor = Actor(journal, pols, services, mode=mode, links={"skyportal": FRITZ}, **kw)
    rows = [{**a, "model_version": mv} for a in alerts]
    with journal.transaction():
        journal.record_alerts(rows)
        history = journal.alerts_for_object(OID, mv)
        for p in pols:
            d = evaluate(p, history)
            if d is not None and journal.get_decision(p.name, OID) is None:
                actor.plan(d, next(a for a in history if a["candid"] == d.candid))
        actor.plan_source(OID)
    return actor, actor.run_pending()


def act_killed_after(journal, monkeypatch, kind, pols, fritz):
    """`act`, killed between the request of the first `kind` action and the journal entry of its outcome."""
    real = journal.finish_action

    def killed(action_id, outcome, *a, **k):
        if journal.action(action_id)["action"] == kind:
            raise KeyboardInterrupt(f"killed between the {kind} request and its journal entry")
        return real(action_id, outcome, *a, **k)

    monkeypatch.setattr(journal, "finish_action", killed)
    with pytest.raises(KeyboardInterrupt):
        act(journal, pols, [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    monkeypatch.undo()


def outcomes(reports):
    return {(r.policy, r.action): r.outcome for r in reports}


def test_a_saved_and_triggered_source_in_order(journal):
    fritz = RecordingFritz()
    _, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports) == {("bts_p1", "save"): "saved", ("bts_p1", "comment"): "posted",
                                 ("bts_p1", "annotation"): "posted", ("bts_p2", "followup"): "posted",
                                 ("bts_p2", "comment"): "merged"}
    # 5 requests: the source is read once (404: a new Obj, so it has no follow-up request to list)
    assert fritz.names() == ["source_view", "save_source", "upsert_annotation", "submit_followup", "comment"]
    (text,) = [c[2] for c in fritz.calls if c[0] == "comment"]  # save and trigger at one alert: one comment
    assert text == (f"BTSbot {policies()[0].model_version}: saved to group 1001 by bts_p1 — 2 alerts > 0.5, "
                    "max score 0.950; SEDM follow-up requested (request 1) by bts_p2 — 2 alerts > 0.5, "
                    "max score 0.950, peak 18.00 mag, candid 2001")
    (merged,) = [a for a in journal.history(kind="actions") if a["action"] == "comment" and a["policy"] == "bts_p2"]
    lead = next(a for a in journal.history(kind="actions") if a["action"] == "comment" and a["policy"] == "bts_p1")
    assert merged["response"]["merged_into"] == lead["id"] and lead["response"]["text"] == text
    assert journal.unfinished_actions() == []


def test_save_and_trigger_at_different_alerts_are_two_comments(journal):
    fritz = RecordingFritz()
    pols = policies()
    act(journal, pols, [alert(0, 0.9, 18.7), alert(1, 0.95, 18.6)], {"skyportal": fritz})
    act(journal, pols, [alert(2, 0.96, 18.2)], {"skyportal": fritz})  # bts_p2 fires once brighter than 18.5
    texts = [c[2] for c in fritz.calls if c[0] == "comment"]
    assert len(texts) == 2 and texts[0].startswith(f"BTSbot {pols[0].model_version}: saved to group 1001 by bts_p1")
    assert "by bts_p1" not in texts[1] and "SEDM follow-up requested (request 1) by bts_p2 — 3 alerts" in texts[1]


def test_no_comment_when_nothing_changed_on_fritz(journal):
    fritz = RecordingFritz()
    fritz.post_source = lambda obj_id, group_ids, ra=None, dec=None: SaveResult([], list(group_ids))
    fritz.requests.append({"id": 9, "obj_id": OID, "allocation_id": 2001, "status": "submitted",
                           "payload": {"priority": 3, "observation_type": "IFU"}})
    _, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    got = outcomes(reports)
    assert got[("bts_p1", "save")] == "failed" and got[("bts_p2", "followup")] == "skipped"
    assert got[("bts_p1", "comment")] == "skipped" and got[("bts_p2", "comment")] == "merged"
    assert "comment" not in fritz.names()


def test_a_fritz_that_already_holds_everything_gets_no_comment(journal):
    """A fresh journal against a Fritz that already holds the source, its SEDM request and the annotation
    (e.g. a new bot host, or a human acted first): nothing changes on Fritz, so nothing is commented."""
    fritz = RecordingFritz()
    fritz.exists, fritz.groups, fritz.annotations = True, {1001}, [{"id": 5, "origin": "btsbot"}]
    fritz.requests.append({"id": 9, "obj_id": OID, "allocation_id": 2001, "status": "submitted",
                           "payload": {"priority": 3, "observation_type": "IFU"}})
    _, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    got = outcomes(reports)
    assert got[("bts_p1", "save")] == "already_saved" and got[("bts_p2", "followup")] == "skipped"
    assert got[("bts_p1", "comment")] == "skipped" and got[("bts_p1", "annotation")] == "updated"
    assert fritz.names() == ["source_view", "upsert_annotation", "followup_requests"]  # no POST, no comment
    assert [c[3] for c in fritz.calls if c[0] == "upsert_annotation"] == [5]  # the annotation seen is PUT


def test_a_group_already_saved_is_not_posted_again(journal):
    fritz = RecordingFritz()
    fritz.exists, fritz.groups = True, {1002}
    pols = policies(**{"policies": [{"name": "bts_p1", "actions": {"save": {"group_ids": [1001, 1002]}}}]})
    _, reports = act(journal, pols[:1], [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p1", "save")] == "saved"
    assert [c[2] for c in fritz.calls if c[0] == "save_source"] == [[1001]]
    (save,) = [a for a in journal.history(kind="actions") if a["action"] == "save"]
    assert save["response"]["saved"] == [1001] and save["response"]["already"] == [1002]


def test_a_retried_comment_is_byte_identical_and_journaled_as_merged(journal, monkeypatch):
    fritz = RecordingFritz()
    pols = policies()[:1]
    act_killed_after(journal, monkeypatch, "comment", pols, fritz)
    reports = Actor(journal, pols, {"skyportal": fritz}, mode="live").run_pending()  # restarted later
    assert outcomes(reports) == {("bts_p1", "comment"): "posted", ("bts_p1", "annotation"): "posted"}
    first, again = [c[2] for c in fritz.calls if c[0] == "comment"]
    assert first == again  # no clock in the text: SkyPortal merges the retry
    (done,) = [a for a in journal.history(kind="actions") if a["action"] == "comment"]
    assert done["response"]["merged"] is True and "Same comment already exists" in done["response"]["message"]


@pytest.mark.parametrize("score, text", [(0.99969, "0.999"), (0.5, "0.500"), (0.57, "0.570"), (0.9999999, "0.999"),
                                         (1.0, "1.000")])
def test_scores_in_comments_are_truncated_never_rounded_up(score, text):
    assert score_text(score) == text


def test_comment_waits_for_the_save_it_describes(journal):
    fritz = RecordingFritz()
    fritz.fail["save_source"] = [SkyPortalError(500, "boom", "POST", "/api/sources")] * 3
    pols = policies()
    actor, reports = act(journal, pols[:1], [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p1", "save")] is None
    assert outcomes(reports)[("bts_p1", "comment")] is None
    assert "comment" not in fritz.names()  # nothing describes a save that has not happened
    for _ in range(2):
        actor.run_pending()
    assert "comment" not in fritz.names() and fritz.names().count("save_source") == 3
    done = outcomes(actor.run_pending())
    assert done[("bts_p1", "save")] == "saved" and done[("bts_p1", "comment")] == "posted"
    assert fritz.names().count("comment") == 1


def test_a_refusal_is_final_and_an_unexpected_error_stays_pending(journal):
    fritz = RecordingFritz()
    fritz.fail["submit_followup"] = [SkyPortalError(400, "Unknown field", "POST", "/api/followup_request")]
    fritz.fail["upsert_annotation"] = [RuntimeError("odd answer")]
    actor, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    got = outcomes(reports)
    assert got[("bts_p2", "followup")] == "failed" and got[("bts_p1", "annotation")] is None
    assert got[("bts_p1", "save")] == "saved"
    assert [a["action"] for a in journal.unfinished_actions()] == ["annotation"]
    assert outcomes(actor.run_pending()) == {("bts_p1", "annotation"): "posted"}


def test_annotation_counts_only_scores_strictly_above_min_score(journal):
    fritz = RecordingFritz()
    act(journal, policies(), [alert(0, 0.9), alert(1, 0.95), alert(2, 0.5)], {"skyportal": fritz})
    (data,) = [c[2] for c in fritz.calls if c[0] == "upsert_annotation"]
    assert data["btsbot_n_counting_alerts"] == 2  # the alert scored exactly 0.5 does not count
    assert data["btsbot_latest_score"] == 0.5 and data["btsbot_latest_candid"] == "2002"


def test_peak_exactly_at_peakmag_max_triggers(journal):
    fritz = RecordingFritz()
    p2 = [p for p in policies() if p.name == "bts_p2"]
    assert p2[0].peakmag_max == 18.5
    _, reports = act(journal, p2, [alert(0, 0.9, 18.6), alert(1, 0.95, 18.5, peak=18.5)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p2", "followup")] == "posted"
    journal2 = Journal(":memory:")
    _, reports = act(journal2, p2, [alert(0, 0.9, 18.6), alert(1, 0.95, 18.51, peak=18.51)], {"skyportal": fritz})
    assert reports == []  # just fainter than the cut: no decision


def test_dry_run_sends_nothing_and_journals_each_request(journal):
    fritz = RecordingFritz()
    _, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz}, mode="dry-run")
    assert fritz.calls == [] and {r.outcome for r in reports} == {"dry-run"}
    sent = {a["action"]: a["response"]["would_send"] for a in journal.history(kind="actions")}
    assert sent["save"] == {"method": "POST", "path": "/api/sources", "body": {"id": OID, "group_ids": [1001]}}
    assert sent["followup"]["body"]["payload"]["priority"] == 3


def test_stop_leaves_the_actions_not_started_pending(journal):
    fritz = RecordingFritz()
    stop = threading.Event()
    real = fritz.post_source

    def save_then_stop(*a, **k):
        stop.set()  # SIGTERM arrives while the save is in flight
        return real(*a, **k)

    fritz.post_source = save_then_stop
    pols = policies()
    actor = Actor(journal, pols, {"skyportal": fritz}, mode="live")
    mv = pols[0].model_version
    with journal.transaction():
        journal.record_alerts([{**a, "model_version": mv} for a in (alert(0, 0.9), alert(1, 0.95))])
        for p in pols:
            actor.plan(evaluate(p, journal.alerts_for_object(OID, mv)), {"extra": {"ra": 1.0, "dec": 2.0}})
    reports = actor.run_pending(stop)
    assert [(r.action, r.outcome) for r in reports] == [("save", "saved")]  # finished and journaled
    assert len(journal.unfinished_actions()) == 3
    assert {r.action for r in actor.run_pending()} == {"comment", "followup"}


def test_every_kind_is_registered_with_its_config_key():
    assert list(KINDS) == ["save", "followup", "comment", "annotation", "notify"]
    assert {k.config_key for k in KINDS.values()} == {"save", "followup", "comment", "annotate", "notify"}


# --- notify ----------------------------------------------------------------------------------------------------
def notifying(**notify):
    return policies(policies=[
        {"name": "bts_p1", "actions": {"save": {"group_ids": [1001]}, "notify": {"webhook_env": ENV, **notify}}},
        {"name": "bts_p2", "peakmag_max": 18.5, "actions": {"followup": {
            "allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3}},
            "notify": {"webhook_env": ENV, **notify}}}])


@pytest.fixture
def hook():
    with WebhookSim() as sim:
        yield sim


def services(fritz, hook, timeout_s=2.0):
    return {"skyportal": fritz, service_name(ENV): Webhook(hook.url, timeout_s)}


def test_notify_posts_what_happened_on_fritz(journal, hook, tmp_path):
    fritz = RecordingFritz()
    _, reports = act(journal, notifying(), [alert(0, 0.9), alert(1, 0.95)], services(fritz, hook))
    assert outcomes(reports)[("bts_p1", "notify")] == "posted" and outcomes(reports)[("bts_p2", "notify")] == "posted"
    assert [r.action for r in reports][-2:] == ["notify", "notify"]  # after every Fritz action
    saved, triggered = hook.texts
    assert saved.startswith(f"BTSbot: <{FRITZ}/source/{OID}|{OID}> selected by bts_p1 — 2 alerts > 0.5, "
                            "max score 0.950, peak 18.00 mag. On Fritz: saved to group 1001")
    assert "SEDM follow-up requested (request 1), status submitted" in triggered
    journal.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    assert hook.path.encode() not in raw and hook.url.encode() not in raw  # the URL is never journaled
    assert b"max score 0.950, peak 18.00 mag. On Fritz: saved to group 1001" in raw  # the message is


def test_notify_reports_an_ignored_request_with_its_reason(journal, hook):
    fritz = RecordingFritz()
    fritz.submit_followup = lambda body: FollowupResult("ignored", None, None, "source is classified", None, 200)
    act(journal, notifying(on=["followup"]), [alert(0, 0.9), alert(1, 0.95)], services(fritz, hook))
    assert hook.texts == [hook.texts[0]] and "SEDM follow-up ignored: source is classified" in hook.texts[0]


def test_webhook_down_keeps_notify_pending_without_holding_fritz(journal, hook):
    fritz = RecordingFritz()
    hook.fail_status = 503
    actor, reports = act(journal, notifying(), [alert(0, 0.9), alert(1, 0.95)], services(fritz, hook))
    got = outcomes(reports)
    assert got[("bts_p1", "save")] == "saved" and got[("bts_p2", "followup")] == "posted"
    assert got[("bts_p1", "notify")] is None and got[("bts_p2", "notify")] is None
    assert hook.refused == 1  # found down once: the second notification did not wait for it
    hook.fail_status = None
    actor.ctx.services[service_name(ENV)]._down_until = 0.0  # a minute later
    assert outcomes(actor.run_pending()) == {("bts_p1", "notify"): "posted", ("bts_p2", "notify"): "posted"}
    assert len(hook.texts) == 2 and journal.unfinished_actions() == []


def crash_after_notify_post(journal, monkeypatch):
    real = journal.finish_action

    def finish(action_id, outcome, *a, **k):
        if any(x["id"] == action_id and x["action"] == "notify" for x in journal.unfinished_actions()):
            raise KeyboardInterrupt("killed between the webhook POST and its outcome")
        return real(action_id, outcome, *a, **k)

    monkeypatch.setattr(journal, "finish_action", finish)


@pytest.mark.parametrize("resend, expected, n_messages", [(False, "unknown", 1), (True, "posted", 2)])
def test_a_crash_mid_post_is_at_most_once_by_default(journal, hook, monkeypatch, resend, expected, n_messages):
    fritz = RecordingFritz()
    pols = notifying(on=["save"], resend_unknown=resend)[:1]
    crash_after_notify_post(journal, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        act(journal, pols, [alert(0, 0.9), alert(1, 0.95)], services(fritz, hook))
    monkeypatch.undo()
    assert len(hook.texts) == 1
    reports = Actor(journal, pols, services(fritz, hook), mode="live").run_pending()  # the restarted bot
    assert outcomes(reports) == {("bts_p1", "notify"): expected}
    assert len(hook.texts) == n_messages and len(set(hook.texts)) == 1  # a resend is the same text
    (done,) = [a for a in journal.history(kind="actions") if a["action"] == "notify"]
    assert done["response"]["text"] == hook.texts[0]


def test_notify_dry_run_journals_the_message_and_sends_nothing(journal, hook):
    fritz = RecordingFritz()
    _, reports = act(journal, notifying(), [alert(0, 0.9), alert(1, 0.95)], services(fritz, hook), mode="dry-run")
    assert hook.messages == [] and fritz.calls == []
    (n1,) = [a for a in journal.history(kind="actions") if a["action"] == "notify" and a["policy"] == "bts_p1"]
    assert n1["outcome"] == "dry-run" and n1["response"]["would_send"]["url"] == f"${ENV}"
    assert "selected by bts_p1" in n1["response"]["would_send"]["body"]["text"]


def test_live_notify_needs_its_webhook(journal):
    with pytest.raises(ValueError, match="webhook:BTSBOT_SLACK_WEBHOOK"):
        Actor(journal, notifying(), {"skyportal": RecordingFritz()}, mode="live")


def test_a_followup_waits_for_another_policys_save_of_its_source(journal):
    fritz = RecordingFritz()
    fritz.fail["save_source"] = [SkyPortalError(500, "boom", "POST", "/api/sources")] * 2
    actor, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    got = outcomes(reports)
    assert got[("bts_p1", "save")] is None and got[("bts_p2", "followup")] is None
    assert "submit_followup" not in fritz.names() and "followup_requests" not in fritz.names()
    (wait,) = [r.detail for r in reports if r.action == "followup"]
    assert wait == f"waiting for the save of {OID} by bts_p1"
    assert outcomes(actor.run_pending())[("bts_p2", "followup")] is None  # the save failed again
    done = outcomes(actor.run_pending())  # Fritz is back: the save, then the follow-up, in one run
    assert done[("bts_p1", "save")] == "saved" and done[("bts_p2", "followup")] == "posted"
    assert done[("bts_p1", "comment")] == "posted" and done[("bts_p2", "comment")] == "merged"
    names = fritz.names()
    assert names.index("submit_followup") > len(names) - 1 - names[::-1].index("save_source")
    assert journal.unfinished_actions() == []


def test_a_followup_refused_for_a_missing_source_is_retried(journal):
    fritz = RecordingFritz()
    real = fritz.submit_followup
    answers = [FollowupResult("failed", None, None, "Error submitting follow-up request: Could not find source "
                              f"with ID {OID}.", None, 400)]

    def submit(body):
        if answers:
            fritz._call("submit_followup", body)
            return answers.pop(0)
        return real(body)

    fritz.submit_followup = submit
    p2 = [p for p in policies() if p.name == "bts_p2"]
    actor, reports = act(journal, p2, [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p2", "followup")] is None  # transient, not a final failure
    (pending,) = [a for a in journal.unfinished_actions() if a["action"] == "followup"]
    assert "Could not find source" in pending["error"]
    assert outcomes(actor.run_pending())[("bts_p2", "followup")] == "posted"
    assert fritz.names().count("submit_followup") == 2


def test_an_annotation_update_puts_the_journaled_id_and_says_updated(journal):
    fritz = RecordingFritz()
    actor, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p1", "annotation")] == "posted"
    _, reports = act(journal, policies(), [alert(2, 0.97)], {"skyportal": fritz})  # a new alert: summary changed
    assert outcomes(reports) == {("bts_p1", "annotation"): "updated"}
    first, second = [c for c in fritz.calls if c[0] == "upsert_annotation"]
    assert first[3] is None and second[3] == 7  # the id journaled the first time is PUT, nothing read


def test_own_followup_request_is_recognised_after_a_kill_just_after_the_post(journal, monkeypatch):
    fritz = RecordingFritz()
    pols = policies()
    act_killed_after(journal, monkeypatch, "followup", pols, fritz)
    (pending,) = [a for a in journal.unfinished_actions() if a["action"] == "followup"]
    sent, stored = pending["attempt"]["body"]["payload"], fritz.requests[0]["payload"]  # marked before the POST
    assert sent.items() < stored.items()  # Fritz stores it with SEDM's defaults added
    reports = Actor(journal, pols, {"skyportal": fritz}, mode="live").run_pending()  # the restarted bot
    got = outcomes(reports)
    assert got[("bts_p2", "followup")] == "posted" and fritz.names().count("submit_followup") == 1
    (done,) = [a for a in journal.history(kind="actions") if a["action"] == "followup"]
    assert done["response"]["request_id"] == 1 and "own request recognised" in done["response"]["message"]
    (text,) = [c[2] for c in fritz.calls if c[0] == "comment"]  # one comment, saying it was requested
    assert "SEDM follow-up requested (request 1) by bts_p2" in text


def test_a_request_someone_else_made_is_still_skipped(journal):
    fritz = RecordingFritz()
    fritz.requests.append({"id": 9, "obj_id": OID, "allocation_id": 2001, "status": "submitted",
                           "payload": {"priority": 3, "observation_type": "IFU"}})
    _, reports = act(journal, policies(), [alert(0, 0.9), alert(1, 0.95)], {"skyportal": fritz})
    assert outcomes(reports)[("bts_p2", "followup")] == "skipped"
