"""The `notify` action kind (bot/actions/notify.py), hook by hook, on a real Journal, a Context built
directly (no cycle) and the recording webhook stand-in on loopback (bot/sim/webhook.py) through the real
`bot.webhook.Webhook`: `open_services` (the URL from the variable the policy names; missing or invalid: a
ConfigError naming the key), `plan` (the `events` filter), `waiting_for`, the text (Slack's link form,
escaping), `execute` (posted; at most once after a crash mid-POST unless `resend_unknown`; a refusal
before delivery clears the mark), `would_send` and `describe`. Full cycles: tests/test_action_engine.py."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest
from kind_context import kind_context

from bot.actions.registry import KINDS
from bot.config import ConfigError, load_config
from bot.core.policies import evaluate
from bot.runtime import configured_policies
from bot.sim.webhook import WebhookSim
from bot.webhook import Webhook, WebhookError

NOTIFY = KINDS["notify"]
OID = "ZTF23abhvlji"
ENV = "BTSBOT_TEST_WEBHOOK"
FRITZ = "https://fritz.example/"
T0 = datetime(2023, 10, 5, 12, tzinfo=timezone.utc)
FOLLOWUP = {"allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3}}
ALERTS = [{"candid": 2000 + i, "objectId": OID, "jd": 2460220.5 + i, "score": s, "status": "ok", "magpsf": 18.0,
           "peakmag_so_far": 18.0, "age": float(i), "drb": 0.99} for i, s in enumerate((0.9, 0.95))]


def config(*policies, mode="live"):
    return load_config(overrides={"mode": mode, "policies": list(policies)}, env={})


def notifying(name="bts_p1", actions=None, **notify):
    """A policy config that saves, requests SEDM (unless `actions` says otherwise) and notifies."""
    return {"name": name, "peakmag_max": 18.5, "actions": {**(actions or {"save": {"group_ids": [1001]},
                                                                       "followup": FOLLOWUP}),
                                                           "notify": {"webhook_env": ENV, **notify}}}


@pytest.fixture(scope="module")
def webhook_sim():
    with WebhookSim() as sim:  # one for the module: stopping one takes half a second
        yield sim


@pytest.fixture
def hook(webhook_sim):
    """The recording webhook, as new: no message, answering 200 at once."""
    webhook_sim.messages.clear()
    webhook_sim.fail_status, webhook_sim.hang_s, webhook_sim.refused = None, 0.0, 0
    return webhook_sim


def context(journal, pols, services=None, links=None):
    return kind_context(journal, pols, services, now=T0, links={"skyportal": FRITZ} if links is None else links)


def decide(ctx, policy):
    """Journal the alerts, `policy`'s decision and its planned notification: (decision_id, notify id)."""
    mv = policy.model_version
    ctx.journal.record_alerts([{**a, "model_version": mv} for a in ALERTS])
    d = evaluate(policy, ctx.journal.alerts_for_object(OID, mv))
    did, _ = ctx.journal.record_decision(d.policy, d.objectId, d.candid, d.jd, d.evidence, mode="live")
    (planned,) = NOTIFY.plan(ctx, policy, d, {})
    return did, ctx.journal.start_action(did, "notify", planned[1], key=planned[0], mode="live")


def main(ctx, did, about, outcome=None, response=None):
    aid = ctx.journal.start_action(did, about, {"obj_id": OID}, key=about, mode="live")
    if outcome is not None:
        ctx.journal.finish_action(aid, outcome, response or {})
    return aid


SAVED = {"saved": [1001], "already": [], "missing": []}


def ready(journal, hook, **notify):
    """A decision whose save is done, its notification pending, the webhook service at hand: (ctx, id)."""
    (p,) = configured_policies(config(notifying(actions={"save": {"group_ids": [1001]}}, **notify)))
    ctx = context(journal, [p], {f"webhook:{ENV}": Webhook(hook.url, 2.0)})
    did, nid = decide(ctx, p)
    main(ctx, did, "save", "saved", SAVED)
    return ctx, nid


# --- open_services --------------------------------------------------------------------------------------
def test_open_services_one_webhook_per_variable_from_the_environment(hook):
    cfg = config({"name": "quiet", "actions": {"save": {"group_ids": [1001]}}},
                 notifying("a", timeout_s=2), notifying("b", timeout_s=7), notifying("c", webhook_env="OTHER"))
    pols = configured_policies(cfg)
    services = NOTIFY.open_services(cfg, pols, {ENV: hook.url, "OTHER": hook.url, "UNUSED": "x"})
    assert sorted(services) == [f"webhook:{ENV}", "webhook:OTHER"]
    assert services[f"webhook:{ENV}"].timeout_s == 7  # the longest of the policies sharing it
    assert [NOTIFY.services(p) for p in pols] == [[], [f"webhook:{ENV}"], [f"webhook:{ENV}"], ["webhook:OTHER"]]
    assert hook.url not in repr(services[f"webhook:{ENV}"])
    assert services["webhook:OTHER"].post("hello") == 200 and hook.texts == ["hello"]


def test_a_missing_webhook_url_is_a_config_error_naming_the_key_in_live_only():
    policies = ({"name": "quiet", "actions": {"save": {"group_ids": [1001]}}}, notifying())
    cfg = config(*policies)
    with pytest.raises(ConfigError) as err:
        NOTIFY.open_services(cfg, configured_policies(cfg), {ENV: ""})
    assert str(err.value) == (f"policies.1.actions.notify.webhook_env: the environment variable {ENV} "
                              "(the webhook URL) is not set")
    dry = config(*policies, mode="dry-run")  # dry-run sends nothing: it needs no URL
    assert NOTIFY.open_services(dry, configured_policies(dry), {}) == {}


def test_an_invalid_webhook_url_is_a_config_error_that_does_not_show_it():
    cfg = config(notifying())
    secret = "hooks.example/services/T000/B000/s3cr3t"  # no scheme
    with pytest.raises(ConfigError) as err:
        NOTIFY.open_services(cfg, configured_policies(cfg), {ENV: secret})
    assert str(err.value).startswith(f"policies.0.actions.notify.webhook_env: ${ENV}: ")
    assert "http://" in str(err.value) and "s3cr3t" not in str(err.value)


# --- plan, waiting_for ----------------------------------------------------------------------------------
@pytest.mark.parametrize("actions, events, about", [
    (None, ["save", "followup"], ["save", "followup"]),
    (None, ["followup"], ["followup"]),
    ({"save": {"group_ids": [1001]}}, ["save", "followup"], ["save"]),  # no follow-up to report
    ({"save": {"group_ids": [1001]}}, ["followup"], None)])  # nothing to report: no notification
def test_plan_reports_the_main_actions_the_events_name(journal, actions, events, about):
    (p,) = configured_policies(config(notifying(actions=actions, events=events)))
    d = evaluate(p, [{**a, "model_version": p.model_version} for a in ALERTS])
    expected = [("notify", {"obj_id": OID, "about": about, "webhook_env": ENV})] if about else []
    assert NOTIFY.plan(context(journal, [p]), p, d, {}) == expected


def test_waits_for_every_main_action_it_reports(journal):
    (p,) = configured_policies(config(notifying()))
    ctx = context(journal, [p])
    did, nid = decide(ctx, p)
    save, follow = main(ctx, did, "save"), main(ctx, did, "followup")
    assert NOTIFY.waiting_for(ctx, journal.action(nid)) == "waiting for the save and followup it reports"
    journal.finish_action(save, "saved", SAVED)
    assert NOTIFY.waiting_for(ctx, journal.action(nid)) == "waiting for the followup it reports"
    journal.finish_action(follow, "failed", {"message": "refused"})  # a final outcome is reported as it is
    assert NOTIFY.waiting_for(ctx, journal.action(nid)) is None


# --- the text -------------------------------------------------------------------------------------------
def test_text_links_the_source_and_escapes_slacks_control_characters(journal):
    (p,) = configured_policies(config(notifying("R&D <night>")))
    ctx = context(journal, [p])
    did, nid = decide(ctx, p)
    main(ctx, did, "save", "saved", SAVED)
    main(ctx, did, "followup", "ignored", {"message": "source is classified <SN Ia>"})
    action = journal.action(nid)
    assert NOTIFY.text(ctx, action) == (
        f"BTSbot: <https://fritz.example/source/{OID}|{OID}> selected by R&amp;D &lt;night&gt; — 2 alerts > 0.5, "
        "max score 0.950, peak 18.00 mag. On Fritz: saved to group 1001; "
        "SEDM follow-up ignored: source is classified &lt;SN Ia&gt;")
    plain = NOTIFY.text(context(journal, [p], links={}), action)  # no Fritz URL known: the bare name
    assert plain.startswith(f"BTSbot: {OID} selected by R&amp;D &lt;night&gt; — ")


def test_text_says_a_requests_status_and_a_main_action_that_does_not_exist(journal):
    (p,) = configured_policies(config(notifying()))
    ctx = context(journal, [p])
    did, nid = decide(ctx, p)  # its save was never journaled
    main(ctx, did, "followup", "posted", {"request_id": 5, "status": "submitted"})
    assert NOTIFY.text(ctx, journal.action(nid)).endswith(
        "On Fritz: save not done; SEDM follow-up requested (request 5), status submitted")


# --- execute --------------------------------------------------------------------------------------------
def test_execute_posts_the_text_marked_just_before(journal, hook):
    ctx, nid = ready(journal, hook)
    text = NOTIFY.text(ctx, journal.action(nid))
    assert NOTIFY.would_send(ctx, journal.action(nid)) == {"method": "POST", "url": f"${ENV}", "body": {"text": text}}
    assert NOTIFY.execute(ctx, journal.action(nid)) == ("posted", {"text": text, "http_status": 200})
    assert hook.texts == [text] and journal.action(nid).attempt["text"] == text


def test_a_crash_mid_post_is_unknown_and_not_resent(journal, hook):
    ctx, nid = ready(journal, hook)
    journal.mark_sending(nid, {"text": "the message sent before the crash"})  # then the bot was killed
    outcome, response = NOTIFY.execute(ctx, journal.action(nid))
    assert outcome == "unknown" and response["text"] == "the message sent before the crash"
    assert "not resent" in response["message"] and hook.messages == []


def test_resend_unknown_resends_the_marked_text(journal, hook):
    ctx, nid = ready(journal, hook, resend_unknown=True)
    journal.mark_sending(nid, {"text": "the message sent before the crash"})
    assert NOTIFY.execute(ctx, journal.action(nid)) == (
        "posted", {"text": "the message sent before the crash", "http_status": 200, "resent": True})
    assert hook.texts == ["the message sent before the crash"]  # the same bytes, not a new text


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


@pytest.mark.parametrize("why", ["503", "404", "unreachable"])
def test_a_refusal_before_delivery_clears_the_mark(journal, hook, why):
    ctx, nid = ready(journal, hook)
    if why == "503":
        hook.fail_status = 503
    url = {"404": hook.url + "-not-it", "unreachable": closed_port_url()}.get(why, hook.url)
    ctx.services[f"webhook:{ENV}"] = Webhook(url, 2.0)
    with pytest.raises(WebhookError) as err:
        NOTIFY.execute(ctx, journal.action(nid))
    assert err.value.delivered is False and err.value.transient is (why != "404")
    assert journal.action(nid).attempt is None  # certainly not sent: the next run sends it, as new
    hook.fail_status = None
    ctx.services[f"webhook:{ENV}"] = Webhook(hook.url, 2.0)  # the next run
    outcome, response = NOTIFY.execute(ctx, journal.action(nid))
    assert outcome == "posted" and "resent" not in response and len(hook.texts) == 1


@pytest.mark.parametrize("resend", [False, True])
def test_a_timeout_may_have_delivered_so_the_mark_stays(journal, hook, resend):
    ctx, nid = ready(journal, hook, resend_unknown=resend)
    hook.hang_s = 0.4  # records the message, answers late
    ctx.services[f"webhook:{ENV}"] = Webhook(hook.url, 0.15)
    if resend:  # at least once: left pending (transient), resent by the next run
        with pytest.raises(WebhookError):
            NOTIFY.execute(ctx, journal.action(nid))
    else:  # at most once: final
        outcome, response = NOTIFY.execute(ctx, journal.action(nid))
        assert outcome == "unknown" and "may have been delivered, not resent" in response["message"]
    assert len(hook.texts) == 1 and journal.action(nid).attempt["text"] == hook.texts[0]
    time.sleep(0.5)  # the stand-in answers the client that gave up (a broken pipe) during this test, not the next


def test_a_missing_webhook_service_leaves_no_mark(journal, hook):
    ctx, nid = ready(journal, hook)
    ctx.services.clear()
    with pytest.raises(RuntimeError, match=f"no webhook:{ENV} service"):
        NOTIFY.execute(ctx, journal.action(nid))
    assert journal.action(nid).attempt is None


def test_describe():
    assert NOTIFY.describe({"outcome": "posted"}) == "notification posted"
    assert NOTIFY.describe({"outcome": "unknown"}) == "notification unknown"
    assert NOTIFY.describe({}) == "notification pending"
