"""DefaultFollowupRequests in the SkyPortal stand-in: a new Source row matching a configured filter makes the
server post a follow-up request itself (as Fritz does since it dropped Kowalski).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Callable

from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.errors import ApiError, Fail
from bot.sim.skyportal.schema import loads


class DefaultFollowups:
    """Runs after a save (SourcesHandlers.on_new_sources); posts through `post_followup`
    (FollowupHandlers.post_followup) and records what it posted in `posted` (SkyPortalSim.auto_followups)."""

    def __init__(self, store, post_followup: Callable[[Ctx, dict, dict | None], dict], posted: list[dict]):
        self.store, self.post_followup, self.posted = store, post_followup, posted

    def run(self, ctx: Ctx) -> None:
        """DefaultFollowupRequest (SP models/followup_request.py:378-459): a new Source row matching a
        default request's source_filter (group_id, `name` regex on the obj id, `origin`) makes the server
        post that follow-up request itself, unless a non-deleted request for (obj, allocation) exists.
        Real SkyPortal does this in a background thread; here it is done before the response is sent."""
        st = self.store
        for obj_id, gid in ctx.inserted_sources:
            o = st.obj(obj_id)
            for row in st.q("SELECT * FROM default_followups ORDER BY id"):
                dfr = loads(row["data"])
                flt = dfr.get("source_filter") or {}
                if flt.get("group_id") is not None and int(flt["group_id"]) != gid:
                    continue
                if flt.get("name") and not re.search(flt["name"], obj_id):
                    continue
                if flt.get("origin") and loads(o["data"]).get("origin") != flt["origin"]:
                    continue
                alloc = int(dfr["allocation_id"])
                if st.q1("SELECT 1 FROM followup_requests WHERE obj_id = ? AND allocation_id = ? AND "
                         "status != 'deleted'", (obj_id, alloc)):
                    continue
                requester = st.user(dfr.get("requester_id")) or ctx.user
                sub = Ctx(ctx.store, "POST", "/api/followup_request", {}, ctx.headers, b"")
                sub.user = requester
                now = datetime.utcnow()
                payload = {**(dfr.get("payload") or {}), "start_date": str(now),
                           "end_date": str(now + timedelta(days=float(dfr.get("validity_days", 7))))}
                constraints = dict(dfr.get("constraints") or {}) or None
                if constraints is not None:
                    constraints.setdefault("radius", 0.5)
                data = {"obj_id": obj_id, "allocation_id": alloc, "payload": payload,
                        "target_group_ids": dfr.get("target_group_ids") or []}
                try:
                    result = self.post_followup(sub, data, constraints)
                except (Fail, ApiError):
                    st.commit()
                    continue
                st.commit()
                if dfr.get("comment"):
                    pr = payload.get("priority")
                    text = f"{dfr['comment']} (priority: {pr})" if pr is not None else dfr["comment"]
                    st.insert_comment(obj_id, text, requester["id"], sorted(set(data["target_group_ids"] or [gid])))
                self.posted.append({"obj_id": obj_id, "group_id": gid, **result})
