"""The `annotation` action kind (bot/actions/annotation.py), hook by hook, on a real Journal and a Context
built directly (no cycle): `plan_source` (only for a source a policy with `annotate` decided; keyed by the
latest candid; its data is `source_summary` of the journaled alerts; None when there is nothing to say),
`would_send`, and `execute` against the local SkyPortal through the real SkyPortalClient: the first time
a POST ("posted"), then a PUT of the journaled id ("updated"), or of the id seen in this run's read of the
source. Full cycles: tests/test_action_engine.py and tests/test_actions_paths.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from conftest import SN
from kind_context import acting, alert, kind_context

from bot.actions.registry import KINDS
from bot.core.policies import evaluate, source_summary
from bot.skyportal.client import SkyPortalClient

ANNOTATION = KINDS["annotation"]
T0 = datetime(2023, 10, 5, 12, tzinfo=timezone.utc)


def policies(configs=None):
    return acting(configs)


@pytest.fixture
def fritz(skyportal):
    with SkyPortalClient(skyportal.url, skyportal.token, rate_limit_per_s=None) as client:
        client.post_source(SN, [1001], 143.8, 83.97)  # what the save did: annotations need the Obj
        skyportal.clear_requests()
        yield client


def context(journal, pols, services=None, mode="live"):
    return kind_context(journal, pols, services, now=T0, mode=mode)


def record(journal, mv, *alerts):
    journal.record_alerts([{**a, "model_version": mv} for a in alerts])


def decide(journal, policy, mode="live"):
    d = evaluate(policy, journal.alerts_for_object(SN, policy.model_version))
    return journal.record_decision(d.policy, d.objectId, d.candid, d.jd, d.evidence, mode=mode)[0]


def summary(journal, policy):
    mv = policy.model_version
    return source_summary(journal.alerts_for_object(SN, mv), mv, policy.min_score, policy.alert_mag_max)


def start(ctx):
    """Journal the annotation `plan_source` gives, as the engine does: its action id."""
    did, key, request = ANNOTATION.plan_source(ctx, SN)
    return ctx.journal.start_action(did, "annotation", request, key=key, mode=ctx.mode)


def test_planned_only_for_a_source_a_policy_with_annotate_decided(journal):
    quiet, p1 = policies([{"name": "quiet", "actions": {"save": {"group_ids": [1002]}, "annotate": False}},
                          {"name": "bts_p1", "actions": {"save": {"group_ids": [1001]}}}])
    ctx = context(journal, [quiet, p1])
    record(journal, p1.model_version, alert(0, 0.9), alert(1, 0.95))
    assert ANNOTATION.plan_source(ctx, SN) is None  # alerts, but no decision
    decide(journal, quiet)
    assert ANNOTATION.plan_source(ctx, SN) is None  # only a policy that does not annotate decided
    did = decide(journal, p1)
    assert ANNOTATION.plan_source(ctx, SN) == (did, "annotation:2001", {
        "obj_id": SN, "origin": "btsbot", "data": summary(journal, p1), "group_ids": [1001, 1002]})


def test_a_dry_run_decision_is_not_annotated_live(journal):
    p1, _ = policies()
    record(journal, p1.model_version, alert(0, 0.9), alert(1, 0.95))
    decide(journal, p1, mode="dry-run")
    assert ANNOTATION.plan_source(context(journal, [p1]), SN) is None
    assert ANNOTATION.plan_source(context(journal, [p1], mode="dry-run"), SN)[1] == "annotation:2001"


def test_keyed_by_the_latest_candid_with_the_summary_of_the_journaled_alerts(journal):
    p1, p2 = policies()
    ctx = context(journal, [p1, p2])
    mv = p1.model_version
    record(journal, mv, alert(0, 0.9), alert(1, 0.95))
    d1, _ = decide(journal, p1), decide(journal, p2)
    first = start(ctx)
    assert start(ctx) == first  # the same summary again: the same action, nothing new to send
    record(journal, mv, alert(2, 0.5, 18.2), alert(3, 0.97, 19.3))  # one at the threshold, one too faint
    did, key, request = ANNOTATION.plan_source(ctx, SN)
    assert (did, key) == (d1, "annotation:2003")  # the first decision's, the latest scored alert's candid
    assert request["data"] == summary(journal, p1)
    assert request["data"]["btsbot_n_counting_alerts"] == summary(journal, p1)["btsbot_n_counting_alerts"] == 2
    record(journal, "another-model", alert(4, 0.99))  # scored by another model version: not this summary
    assert ANNOTATION.plan_source(ctx, SN)[1] == "annotation:2003"
    assert start(ctx) != first


def test_nothing_to_say_is_not_planned(journal):
    """A decision journaled, but no alert of the source scored by its model version: no annotation."""
    p1, _ = policies()
    journal.record_decision("bts_p1", SN, 2001, 2460221.5, {}, mode="live")
    record(journal, "another-model", alert(0, 0.9), alert(1, 0.95))
    record(journal, p1.model_version, alert(2, None))  # unscorable
    assert summary(journal, p1) == {}
    assert ANNOTATION.plan_source(context(journal, [p1]), SN) is None


def test_would_send(journal):
    p1, _ = policies()
    ctx = context(journal, [p1])
    record(journal, p1.model_version, alert(0, 0.9), alert(1, 0.95))
    decide(journal, p1)
    aid = start(ctx)
    assert ANNOTATION.would_send(ctx, journal.action(aid)) == {
        "method": "PUT or POST", "path": f"/api/sources/{SN}/annotations",
        "body": {"origin": "btsbot", "data": summary(journal, p1), "group_ids": [1001]}}


def test_first_a_post_then_a_put_of_the_journaled_id(journal, skyportal, fritz):
    p1, _ = policies()
    ctx = context(journal, [p1], {"skyportal": fritz})
    mv = p1.model_version
    record(journal, mv, alert(0, 0.9), alert(1, 0.95))
    decide(journal, p1)
    first = start(ctx)
    outcome, response = ANNOTATION.execute(ctx, journal.action(first))
    assert outcome == "posted"
    journal.finish_action(first, outcome, response)
    record(journal, mv, alert(2, 0.6, 18.4))  # a new alert: the summary changed
    second = start(ctx)
    assert second != first
    assert ANNOTATION.execute(ctx, journal.action(second)) == ("updated", response)  # the same annotation
    aid = response["annotation_id"]
    assert [(r["method"], r["path"]) for r in skyportal.requests] == [
        ("POST", f"/api/sources/{SN}/annotations"), ("PUT", f"/api/sources/{SN}/annotations/{aid}")]  # nothing read
    (stored,) = [a for a in fritz.annotations(SN) if a["origin"] == "btsbot"]
    assert stored["id"] == aid and stored["data"] == summary(journal, p1)
    assert stored["data"]["btsbot_latest_candid"] == "2002"


def test_an_annotation_seen_in_this_runs_read_is_put(journal, skyportal, fritz):
    """A fresh journal against a Fritz already holding the bot's annotation (e.g. a new bot host): the id
    read with the source this run (the save reads it first) is PUT, in one request."""
    p1, _ = policies()
    old, _ = fritz.annotate(SN, "btsbot", {"btsbot_max_score": 0.1}, [1001])
    ctx = context(journal, [p1], {"skyportal": fritz})
    record(journal, p1.model_version, alert(0, 0.9), alert(1, 0.95))
    decide(journal, p1)
    aid = start(ctx)
    ctx.source_view(SN)  # what the save of this run read
    skyportal.clear_requests()
    assert ANNOTATION.execute(ctx, journal.action(aid)) == ("updated", {"annotation_id": old})
    assert [(r["method"], r["path"]) for r in skyportal.requests] == [("PUT", f"/api/sources/{SN}/annotations/{old}")]
    (stored,) = [a for a in fritz.annotations(SN) if a["origin"] == "btsbot"]
    assert stored["data"] == summary(journal, p1)
