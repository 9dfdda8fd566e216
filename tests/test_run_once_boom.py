"""`btsbot run --once` with `source: boom` against the local BOOM makes the same decisions and the same Fritz
writes as with `source: kowalski` against the local Kowalski (the example night: SN 2023tyk saved and
triggered at its second alert, nothing about the CV)."""

from __future__ import annotations

import json

import yaml
from conftest import CV, EXAMPLE_SINCE, EXAMPLE_UNTIL, SN

from bot.cli import main
from bot.journal import Journal
from bot.sim.boom.server import BoomSim
from bot.sim.skyportal import SkyPortalSim

WINDOW = ["--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)]


def _writes(sim):
    return sorted((w["method"], w["path"]) for w in sim.writes())


def test_the_same_decisions_and_writes_through_boom(example_kowalski, example_packets, write_config, tmp_path):
    with SkyPortalSim() as fritz_k, SkyPortalSim() as fritz_b, BoomSim(users={"bot": "pw"}) as boom:
        boom.load_alerts(example_packets)
        k_cfg = write_config(example_kowalski, fritz_k, name="kowalski.yaml", state={"path": "k.sqlite"})
        b_cfg = write_config(example_kowalski, fritz_b, name="boom.yaml", state={"path": "b.sqlite"})
        data = yaml.safe_load(b_cfg.read_text())
        data.update(source="boom", boom={"url": boom.url, "username": "bot", "password": "pw", "timeout_s": 5.0,
                                         "max_time_ms": 4000, "backoff_s": 0.05})
        b_cfg.write_text(yaml.safe_dump(data))
        assert main(["run", "--once", "--config", str(k_cfg), *WINDOW]) == 0
        assert main(["run", "--once", "--config", str(b_cfg), *WINDOW]) == 0
        assert boom.request_counts.get("POST /queries/find", 0) > 0  # it did poll BOOM
        assert _writes(fritz_b) == _writes(fritz_k) and ("POST", "/api/followup_request") in _writes(fritz_b)
        assert not any(CV in w["path"] + json.dumps(w["body"]) for w in fritz_b.writes())
    rows = {}
    for name in ("k", "b"):
        j = Journal(tmp_path / f"{name}.sqlite")
        decisions = [j.get_decision(p, SN) for p in ("bts_p1", "bts_p2")] + [j.get_decision("bts_p1", CV)]
        rows[name] = ([d and (d["policy"], d["candid"]) for d in decisions],
                      [(a["candid"], a["score"], a["status"]) for a in j.alerts_for_object(SN, "v1.0.1")])
        j.close()
    assert rows["b"] == rows["k"]
    assert rows["b"][0][0][0] == "bts_p1" and rows["b"][0][1][0] == "bts_p2" and rows["b"][0][2] is None
