"""A bound on what a bug can spend, live, over the 36 real alerts through the local Kowalski and SkyPortal
with a policy loose enough to select most sources (what a threshold typo does):

- the follow-up budget: `max_per_night` requests per allocation and Palomar night; the rest `over_budget`,
  never sent later for that decision;
- the runaway guard: a cycle that would write to Fritz for more than `limits.max_sources_per_cycle`
  sources writes nothing, keeps its plan pending and the bot unhealthy until `btsbot release-guard`."""

from __future__ import annotations

import pytest
import yaml

from bot.cli import EXIT_OK, EXIT_PENDING, main
from bot.config import load_config
from bot.cycle import run_cycle
from bot.metrics import Metrics
from bot.runtime import open_runtime
from bot.sim.kowalski import KowalskiSim
from bot.sim.skyportal import SkyPortalSim

WINDOW = (2458000.0, 2461000.0)
FOLLOWUP = {"allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3}}


@pytest.fixture
def services(real_alerts):
    with KowalskiSim() as k, SkyPortalSim() as sp:
        k.load_alerts(real_alerts)
        yield k, sp


def _config(tmp_path, services, model_cache, *, followup=None, limits=None):
    k, sp = services
    cfg = {"mode": "live",
           "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": k.port, "token": k.token, "timeout_s": 5.0,
                        "max_time_ms": 4000, "backoff_s": 0.05},
           "skyportal": {"url": sp.url, "token": sp.token, "rate_limit_per_s": 50.0, "backoff_s": 0.05},
           "state": {"path": str(tmp_path / "journal.sqlite")}, "models": {"cache_dir": str(model_cache)},
           "policies": [{"name": "typo", "min_score": 0.05, "min_alerts": 1,
                         "actions": {"save": {"group_ids": [1001]}, **({"followup": followup} if followup else {})}}]}
    if limits is not None:
        cfg["limits"] = limits
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cycle(path, scorer):
    rt = open_runtime(load_config(path), scorer=scorer)
    try:
        report = run_cycle(rt, *WINDOW)
        pending = rt.journal.unfinished_actions("live")
        followups = [a for a in rt.journal.history(kind="actions") if a["action"] == "followup"]
    finally:
        rt.close()
    return report, pending, followups


def _posts(sp, path):
    return [w for w in sp.writes() if w["method"] == "POST" and w["path"] == path]


def test_the_followup_budget_holds_per_night(tmp_path, services, model_cache, onnx_scorer):
    _, sp = services
    path = _config(tmp_path, services, model_cache, followup={**FOLLOWUP, "max_per_night": 2})
    report, _, followups = _cycle(path, onnx_scorer)
    selected = {d["objectId"] for d in report.decisions}
    assert len(selected) > 4  # the typo selects most sources
    assert len(_posts(sp, "/api/followup_request")) == 2
    over = [a for a in followups if a["outcome"] == "over_budget"]
    assert len(over) == len(selected) - 2
    assert all("2 of max_per_night 2" in a["response"]["message"] for a in over)
    assert len(_posts(sp, "/api/sources")) == len(selected)  # the budget is the follow-ups' only
    # never sent later for those decisions: the next cycle sends nothing more
    _cycle(path, onnx_scorer)
    assert len(_posts(sp, "/api/followup_request")) == 2


def test_the_runaway_guard_writes_nothing_until_released(tmp_path, services, model_cache, onnx_scorer, capsys):
    _, sp = services
    path = _config(tmp_path, services, model_cache, limits={"max_sources_per_cycle": 3})
    report, pending, _ = _cycle(path, onnx_scorer)
    n = len({d["objectId"] for d in report.decisions})
    assert n > 3 and report.guard.tripped and report.guard.sources == n
    assert sp.writes() == []  # nothing written to Fritz
    assert {a["objectId"] for a in pending} == {d["objectId"] for d in report.decisions}  # the plan is journaled
    assert any("GUARD TRIPPED" in line for line in report.lines())
    metrics = Metrics("live")
    metrics.cycle_ok(report, len(pending))
    status, body = metrics.health()
    assert status == 503 and body["guard_tripped"] is True
    assert metrics.registry.get_sample_value("btsbot_guard_tripped") == 1.0
    # a later cycle, even with nothing new, still writes nothing: the trip holds until an operator acts
    report2, _, _ = _cycle(path, onnx_scorer)
    assert report2.guard.tripped and sp.writes() == []
    assert main(["release-guard", "--config", str(path)]) == EXIT_OK
    assert "guard released" in capsys.readouterr().out
    report3, pending3, _ = _cycle(path, onnx_scorer)
    assert not report3.guard.tripped and report3.guard.released and pending3 == []
    assert len(_posts(sp, "/api/sources")) == n  # each held source saved once
    assert main(["release-guard", "--config", str(path)]) == EXIT_OK
    assert "has not tripped" in capsys.readouterr().out


def test_run_once_says_the_guard_tripped(tmp_path, services, model_cache, capsys, onnx_scorer):
    path = _config(tmp_path, services, model_cache, limits={"max_sources_per_cycle": 1})
    rc = main(["run", "--once", "--config", str(path), "--since", str(WINDOW[0]), "--until", "2460300"])
    out = capsys.readouterr().out
    assert rc == EXIT_PENDING and "GUARD TRIPPED" in out and "btsbot release-guard" in out
