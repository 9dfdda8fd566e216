"""The simulated SEDM queue behind the SkyPortal stand-in's follow-up requests.

How it answers is set per allocation (seed `facility:` or `SkyPortalSim.set_facility_behaviour`), optionally
per obj: "ok" (submitted), "reject" (HTTP 200, request_status "rejected: ..."), "fail" (HTTP 400 and a
committed "failed to submit: ..." row), "active" (submissions accepted, PUT/DELETE refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.sim.skyportal.errors import Fail
from bot.sim.skyportal.schema import loads

if TYPE_CHECKING:
    from bot.sim.skyportal.store import Store

FACILITY_MODES = ("ok", "reject", "fail", "active")
REJECT_BODY = "Request not accepted by the SEDM queue (simulated)"
FAIL_MESSAGE = "Connection to the SEDM queue failed (simulated)"


def facility_mode(store: Store, allocation_id: int, obj_id: str) -> str:
    """The mode for this obj on this allocation: its own rule, else the allocation's, else "ok"."""
    rule = store.q1("SELECT mode FROM facility_rules WHERE allocation_id = ? AND obj_id = ?",
                    (allocation_id, obj_id))
    if rule:
        return rule["mode"]
    a = store.allocation(allocation_id)
    return a["facility"] if a else "ok"


def facility_call(store: Store, req_id: int, action: str) -> None:
    """Run the SEDM queue call for `action` (submit/update/delete): sets the status or raises Fail."""
    r = store.followup_request(req_id)
    inst = store.request_instrument(r)
    mode = facility_mode(store, r["allocation_id"], r["obj_id"])
    payload = loads(r["payload"]) or {}
    if inst.get("api_classname") == "SEDMAPI":
        if mode == "active" and action in ("update", "delete"):
            raise Fail(f"Cannot {'edit' if action == 'update' else 'delete'} an active request. "
                       "Data is being taken.")
        if action != "delete":
            for key in ("observation_type", "end_date", "start_date", "priority"):
                if key not in payload:
                    raise Fail(repr(key))
            if payload["observation_type"] == "Mix 'n Match" and "observation_choices" not in payload:
                raise Fail("'observation_choices'")
    if mode == "fail":
        raise Fail(FAIL_MESSAGE)
    if action == "delete":
        status = "deleted"
    else:
        status = f"rejected: {REJECT_BODY}" if mode == "reject" else "submitted"
    store.set_followup_status(req_id, status)
