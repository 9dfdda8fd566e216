"""One priority order per follow-up allocation: policies sharing an allocation that disagree are refused at
start, naming the key; the order decides whether a submitted request's priority is raised."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.config import ConfigError, load_config
from bot.core.followup_rules import plan_followup

FOLLOWUP = {"allocation_id": 2001, "payload": {"observation_type": "IFU", "priority": 3}}


def _cfg(tmp_path, orders):
    import yaml

    policies = [{"name": f"p{i}", "actions": {"followup": {**FOLLOWUP, "priority_order": o}}} for i, o in enumerate(orders)]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"policies": policies}))
    return path


def test_conflicting_orders_on_one_allocation_are_refused(tmp_path):
    assert load_config(_cfg(tmp_path, ["desc", "desc"])).policies[1].actions.followup.priority_order == "desc"
    with pytest.raises(ConfigError, match=r"policies\.1\.actions\.followup\.priority_order: 'desc' on allocation 2001, "
                                          r"where policies\.0 uses 'asc'"):
        load_config(_cfg(tmp_path, ["asc", "desc"]))


def test_the_order_decides_a_priority_bump():
    now = datetime(2023, 10, 5, 11, tzinfo=timezone.utc)
    existing = [{"id": 7, "obj_id": "ZTF23abhvlji", "allocation_id": 2001, "status": "submitted",
                 "payload": {"observation_type": "IFU", "priority": 2, "start_date": "2023-10-05",
                             "end_date": "2023-10-12"}}]
    new = {"observation_type": "IFU", "priority": 4}
    assert plan_followup(existing, 2001, new, now, priority_order="asc").action == "update"  # 4 outranks 2
    assert plan_followup(existing, 2001, new, now, priority_order="desc").action == "skip"  # 2 outranks 4
