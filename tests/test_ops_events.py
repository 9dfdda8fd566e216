"""The operator is told (issue 17 part 2): operational events on the chat webhook, once per episode and
once when it clears, the same as metrics; a restart neither repeats nor forgets an open episode."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.config import load_config
from bot.daemon import CycleJob, ops_monitor
from bot.kowalski.poller import MemoryPollState
from bot.metrics import Metrics
from bot.ops import OpsMonitor, conditions
from bot.runtime import open_runtime
from bot.sim.webhook import WebhookSim

NOW = datetime(2023, 10, 5, 10, tzinfo=timezone.utc)


def _found(**kw):
    base = dict(failed_in_a_row=0, max_failed=3, guard_tripped=False, over_budget_tonight=0, oldest_pending=None,
                last_alert=NOW, now=NOW, pending_hours=1.0, quiet_hours=None, in_hours=False)
    return conditions(**{**base, **kw})


def test_one_message_per_episode_and_one_when_it_clears():
    state, sent = MemoryPollState(), []
    ops = OpsMonitor(["failed_cycles", "pending", "quiet"], sent.append, state)
    assert ops.observe(_found(failed_in_a_row=2)) == []
    assert [m.text for m in ops.observe(_found(failed_in_a_row=3))] == ["btsbot: failed cycles: 3 cycles in a row failed"]
    assert ops.observe(_found(failed_in_a_row=4)) == []  # the same episode: nothing more
    again = OpsMonitor(["failed_cycles", "pending", "quiet"], sent.append, state)  # a restart
    assert again.observe(_found(failed_in_a_row=5)) == []
    (m,) = again.observe(_found())
    assert not m.started and m.text.startswith("btsbot: recovered: failed cycles")
    assert len(sent) == 2
    # pending for more than an hour; a quiet night only inside the hours
    (p,) = again.observe(_found(oldest_pending=NOW - timedelta(hours=2)))
    assert "pending since 2023-10-05 08:00 UTC" in p.text
    quiet = dict(quiet_hours=3.0, last_alert=NOW - timedelta(hours=4))
    assert not [m for m in again.observe(_found(oldest_pending=NOW - timedelta(hours=2), **quiet)) if m.event == "quiet"]
    (q,) = again.observe(_found(oldest_pending=NOW - timedelta(hours=2), in_hours=True, **quiet))
    assert q.event == "quiet" and "no alert polled since 2023-10-05 06:00 UTC (4.0 h)" in q.text
    # an event nobody asked for is never sent
    assert OpsMonitor(["quiet"], sent.append, MemoryPollState()).observe(_found(failed_in_a_row=9)) == []


def test_the_daemon_tells_the_webhook_when_kowalski_fails_and_recovers(example_kowalski, skyportal, write_config,
                                                                       onnx_scorer):
    with WebhookSim() as hook:
        path = write_config(example_kowalski, skyportal, mode="dry-run",
                            health={"max_failed_cycles": 2}, kowalski={"retries": 0},
                            notify={"webhook_env": "OPS_HOOK", "events": ["failed_cycles", "pending"]})
        cfg = load_config(path)
        rt = open_runtime(cfg, scorer=onnx_scorer, now_jd=lambda: 2460270.0)
        metrics = Metrics(cfg.mode, cfg.health.max_failed_cycles)
        job = CycleJob(rt, rt.stop, metrics, since_jd=2460200.0, ops=ops_monitor(cfg, rt.journal, env={"OPS_HOOK": hook.url}))
        try:
            example_kowalski.faults.error_rate = 1.0  # Kowalski down
            assert job() is False and job() is False and job() is False
            assert hook.texts == ["btsbot: failed cycles: 2 cycles in a row failed"]  # once, not per cycle
            assert metrics.registry.get_sample_value("btsbot_ops_event", {"event": "failed_cycles"}) == 1.0
            example_kowalski.faults.error_rate = 0.0  # back
            assert job() is True
            assert hook.texts[1].startswith("btsbot: recovered: failed cycles")
            assert metrics.registry.get_sample_value("btsbot_ops_event", {"event": "failed_cycles"}) == 0.0
            assert job() is True and len(hook.texts) == 2
        finally:
            rt.close()
