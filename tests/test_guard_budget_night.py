"""The runaway guard and the follow-up budget over the 2,000-alert benchmark night (`bot.sim.night`: 307
objects of 6-7 alerts, each alert a real packet), live, through the local Kowalski (penquins) and the local
SkyPortal, with the default `limits` and a threshold typo (`min_score: 0.05`) that selects nearly every
source: the first cycle writes nothing to Fritz; once released, every held source is saved once and only
`max_per_night` follow-ups are sent, the rest journaled `over_budget` and never sent later."""

from __future__ import annotations

import pytest
import yaml

from bot.cli import EXIT_OK, main
from bot.config import load_config
from bot.cycle import run_cycle
from bot.runtime import open_runtime
from bot.sim.kowalski import KowalskiSim
from bot.sim.night import NIGHT_JD, busy_night
from bot.sim.skyportal import SkyPortalSim

N_ALERTS, BUDGET = 2000, 5
WINDOW = (NIGHT_JD - 0.1, NIGHT_JD + 1.0)


@pytest.fixture(scope="module")
def night(alerts_dir):
    return busy_night(N_ALERTS, alerts_dir)


def test_guard_and_budget_over_the_benchmark_night(tmp_path, night, model_cache, onnx_scorer, capsys):
    with KowalskiSim() as k, SkyPortalSim() as sp:
        k.load_alerts(night)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({
            "mode": "live",
            "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": k.port, "token": k.token,
                         "timeout_s": 30.0, "max_time_ms": 20000, "backoff_s": 0.05},
            "skyportal": {"url": sp.url, "token": sp.token, "rate_limit_per_s": 1000.0, "backoff_s": 0.05},
            "state": {"path": str(tmp_path / "journal.sqlite")}, "models": {"cache_dir": str(model_cache)},
            "policies": [{"name": "typo", "min_score": 0.05, "min_alerts": 1, "actions": {
                "save": {"group_ids": [1001]},
                "followup": {"allocation_id": 2001, "max_per_night": BUDGET,
                             "payload": {"observation_type": "IFU", "priority": 3}}}}]}))  # limits: the defaults
        cfg = load_config(path)
        assert cfg.limits.max_sources_per_cycle == 50

        def cycle():
            rt = open_runtime(cfg, scorer=onnx_scorer)
            try:
                return run_cycle(rt, *WINDOW), rt.journal.unfinished_actions("live"), \
                    [a for a in rt.journal.history(kind="actions") if a["action"] == "followup"]
            finally:
                rt.close()

        report, pending, _ = cycle()
        selected = {d["objectId"] for d in report.decisions}
        assert report.n_new == N_ALERTS and len(selected) > 150  # the typo selects most of the night
        assert report.guard.tripped and report.guard.sources == len(selected)
        assert sp.writes() == []  # not one write to Fritz
        assert {a["objectId"] for a in pending} == selected  # the whole plan kept, pending

        assert main(["release-guard", "--config", str(path)]) == EXIT_OK
        assert "guard released" in capsys.readouterr().out
        report, pending, followups = cycle()
        assert report.n_new == 0 and not report.guard.tripped and pending == []
        saves = [w for w in sp.writes() if w["method"] == "POST" and w["path"] == "/api/sources"]
        requests = [w for w in sp.writes() if w["method"] == "POST" and w["path"] == "/api/followup_request"]
        assert sorted(w["body"]["id"] for w in saves) == sorted(selected)  # each held source saved once
        assert len(requests) == BUDGET
        over = [a for a in followups if a["outcome"] == "over_budget"]
        assert len(over) == len(selected) - BUDGET
        assert all(f"{BUDGET} of max_per_night {BUDGET}" in a["response"]["message"] for a in over)

        n_writes = len(sp.writes())
        report, pending, _ = cycle()  # nothing new, nothing owed: nothing more is sent
        assert pending == [] and len(sp.writes()) == n_writes
