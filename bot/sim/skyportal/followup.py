"""Handlers of the SkyPortal stand-in for follow-up requests: POST/GET/PUT/DELETE /api/followup_request[/id]
and PUT /api/followup_request/<id>/comment, submitted to the simulated SEDM queue (facility.py).
"""

from __future__ import annotations

from datetime import datetime

from bot.sim.skyportal.context import (
    MAX_FOLLOWUP_REQUESTS,
    Ctx,
    int_arg,
    page_args,
    parse_date,
    sort_args,
)
from bot.sim.skyportal.constraints import check_constraints
from bot.sim.skyportal.envelope import Handlers
from bot.sim.skyportal.errors import ApiError, Fail
from bot.sim.skyportal.facility import facility_call
from bot.sim.skyportal.schema import dumps, loads, utcnow
from bot.sim.skyportal.validation import (
    FOLLOWUP_POST_SCHEMA,
    marshmallow_load,
    schema_error,
    sedm_form_schema,
    sedm_prepare_payload,
)
from bot.sim.skyportal.visibility import readable_allocation, visible_request


class FollowupHandlers(Handlers):
    """Follow-up requests: the not_if_* constraints (constraints.py), then the simulated SEDM (facility.py)."""

    def _updatable_request(self, ctx: Ctx, req_id: int):
        r = self.store.followup_request(req_id)
        if r is None or not (visible_request(ctx, r) or r["requester_id"] == ctx.user["id"]):
            return None
        return r

    def _request_to_change(self, ctx: Ctx, request_id: str, id_name: str = "request_id",
                           missing: str = "Missing FollowUpRequest with id {}"):
        """The request of PUT/DELETE /api/followup_request/<id>[/comment] (400 `missing` when it does not exist
        or is not the user's to change)."""
        rid = int_arg(id_name, request_id)
        r = self._updatable_request(ctx, rid)
        if r is None:
            raise ApiError(400, missing.format(rid))
        return r

    @staticmethod
    def _followup_json(ctx: Ctx) -> dict:
        """The request body without the UI-only refreshSource/refreshRequests flags."""
        data = ctx.json()
        data.pop("refreshSource", None)
        data.pop("refreshRequests", None)
        return data

    @staticmethod
    def _followup_fields(data: dict) -> dict:
        """FollowupRequest schema load of a POST/PUT body (400 "Invalid / missing parameters: ...")."""
        try:
            return marshmallow_load(FOLLOWUP_POST_SCHEMA, data)
        except Fail as e:
            raise ApiError(400, f"Invalid / missing parameters: {e}") from None

    def followup_post(self, ctx: Ctx):
        st = self.store
        data = self._followup_fields(self._followup_json(ctx))
        constraint_keys = ("not_if_duplicates", "source_group_ids", "ignore_source_group_ids", "not_if_classified",
                           "not_if_spectra_exist", "not_if_tns_classified", "not_if_tns_reported",
                           "ignore_allocation_ids", "not_if_assignment_exists")
        constraints = {k: data.pop(k) for k in constraint_keys if k in data} or None
        radius = data.pop("radius", 0.5)
        if constraints is not None:
            constraints["radius"] = float(radius)
        try:
            return self.ok(self.post_followup(ctx, data, constraints))
        except Fail as e:
            if "not submitting request" in str(e) and constraints:
                return self.ok({"id": None, "ignored": True, "message": str(e)})
            raise ApiError(400, f"Error submitting follow-up request: {e}") from None
        finally:
            st.commit()

    def post_followup(self, ctx: Ctx, data: dict, constraints: dict | None) -> dict:
        st = self.store
        if constraints:
            check_constraints(ctx, data, constraints)
        a = readable_allocation(ctx, data["allocation_id"])
        if a is None:
            raise Fail(f"Could not find allocation with ID {data['allocation_id']}.")
        payload = data.get("payload", {})
        ranges = loads(a["data"]).get("validity_ranges")
        if isinstance(ranges, list) and ranges:
            pl = payload if isinstance(payload, dict) else {}
            start_s, end_s = pl.get("start_date"), pl.get("end_date")
            start = parse_date(str(start_s)) if start_s else datetime.utcnow()
            for rng in ranges:
                if not rng.get("start_date") or not rng.get("end_date"):
                    raise Fail("Validity ranges must have both start_date and end_date defined.")
                lo, hi = parse_date(str(rng["start_date"])), parse_date(str(rng["end_date"]))
                if lo <= start <= hi and (end_s is None or lo <= parse_date(str(end_s)) <= hi):
                    break
            else:
                raise Fail(f"{'Provided dates are' if start_s else 'Current date is'} outside allowed validity "
                           "ranges.")
        inst = st.instrument_dict(a["instrument_id"])
        if inst is None:
            raise Fail(f"Could not find instrument for allocation {a['id']}.")
        if inst.get("api_classname") is None:
            raise Fail("Instrument has no remote API.")
        target_groups = st.existing_group_ids(list(dict.fromkeys(data.get("target_group_ids") or [])))
        if inst["api_classname"] == "SEDMAPI":
            if not isinstance(payload, dict):
                raise Fail(f"'{type(payload).__name__}' object has no attribute 'get'")
            payload = sedm_prepare_payload(payload)
            err = schema_error(payload, sedm_form_schema())
            if err is not None:
                raise Fail(str(err))
        if st.obj(data["obj_id"]) is None:
            raise Fail('(psycopg2.errors.ForeignKeyViolation) insert or update on table "followuprequests" '
                       'violates foreign key constraint "followuprequests_obj_id_fkey"')
        req_id = st.insert_followup(data["obj_id"], a["id"], ctx.user["id"], payload, "pending submission", None,
                                    target_groups)
        st.commit()  # committed as "pending submission" before submit() (refreshSource)
        try:
            facility_call(st, req_id, "submit")
        except Fail as e:
            st.set_followup_status(req_id, f"failed to submit: {e}")
            raise
        r = st.q1("SELECT status FROM followup_requests WHERE id = ?", (req_id,))
        return {"id": req_id, "request_status": r["status"]}

    def followup_list(self, ctx: Ctx):
        st = self.store
        sort_by, order = sort_args(ctx)
        p, n = page_args(ctx, 100, MAX_FOLLOWUP_REQUESTS)
        requesters = ctx.arg("requesters")
        if requesters:
            try:
                requesters = [int(x) for x in str(requesters).split(",") if x.strip()]
            except ValueError:
                raise ApiError(400, "requesters must be a comma seperated string list or list of integers") from None
            if any(st.user(u) is None for u in requesters):
                raise ApiError(400, "One or more of the requesters specified does not exist.")
        alloc_id = ctx.arg("allocationID")
        if alloc_id is not None:
            try:
                alloc_id = int(alloc_id)
            except ValueError:
                raise ApiError(400, "Allocation ID must be an integer.") from None
            if readable_allocation(ctx, alloc_id) is None:
                raise ApiError(400, "Allocation ID does not exist or is not accessible.")
        rows = [r for r in st.q("SELECT * FROM followup_requests ORDER BY id") if visible_request(ctx, r)]
        source_id = ctx.arg("sourceID")
        if source_id:
            rows = [r for r in rows if source_id.strip() in r["obj_id"]]
        if alloc_id is not None:
            rows = [r for r in rows if r["allocation_id"] == alloc_id]
        elif ctx.arg("instrumentID"):
            inst = str(ctx.arg("instrumentID")).strip()
            rows = [r for r in rows if str(st.allocation(r["allocation_id"])["instrument_id"]) == inst]
        status = ctx.arg("status")
        if status:
            rows = [r for r in rows if status.strip().lower() in r["status"].lower()]
        if requesters:
            rows = [r for r in rows if r["requester_id"] in requesters]
        for name, cmp in (("startDate", lambda r, d: r["created_at"] >= d), ("endDate", lambda r, d: r["created_at"] <= d)):
            if ctx.arg(name):
                d = parse_date(ctx.arg(name)).isoformat()
                rows = [r for r in rows if cmp(r, d)]
        for name, key, ge in (("observationStartDate", "start_date", True), ("observationEndDate", "end_date", False)):
            if ctx.arg(name):
                bound = parse_date(ctx.arg(name))
                kept = []
                for r in rows:
                    v = (loads(r["payload"]) or {}).get(key)
                    try:
                        dv = parse_date(str(v))
                    except ApiError:
                        continue
                    if (dv >= bound) if ge else (dv <= bound):
                        kept.append(r)
                rows = kept
        threshold = ctx.arg("priorityThreshold")
        if threshold:
            thr = float(threshold)
            rows = [r for r in rows if isinstance((loads(r["payload"]) or {}).get("priority"), (int, float))
                    and loads(r["payload"])["priority"] >= thr]
        key = {"created_at": "created_at", "modified": "modified", "status": "status", "obj": "obj_id"}[sort_by]
        rows.sort(key=lambda r: (r[key], r["id"]), reverse=order == "desc")
        page = rows[(p - 1) * n: p * n]
        return self.ok({"followup_requests": [st.followup_dict(r) for r in page], "totalMatches": len(rows),
                        "pageNumber": p, "numPerPage": n})

    def followup_one(self, ctx: Ctx, request_id: str):
        rid = int_arg("followup_request_id", request_id)
        r = self.store.followup_request(rid)
        if r is None or not visible_request(ctx, r):
            raise ApiError(400, "Could not retrieve followup request.")
        d = self.store.followup_dict(r)
        if d["obj"] is not None:
            d["obj"]["thumbnails"] = []
        d.update({"transactions": [], "transaction_requests": []})
        return self.ok(d)

    def followup_put(self, ctx: Ctx, request_id: str):
        st = self.store
        r = self._request_to_change(ctx, request_id)
        rid = r["id"]
        data = self._followup_json(ctx)
        now = utcnow()
        if "status" in data:  # mode A: every key set verbatim, no validation, no facility call
            for k in ("status", "comment"):
                if k in data:
                    st.x(f"UPDATE followup_requests SET {k} = ? WHERE id = ?",
                         (None if data[k] is None else str(data[k]), rid))
            if "payload" in data:
                st.x("UPDATE followup_requests SET payload = ? WHERE id = ?", (dumps(data["payload"]), rid))
            st.x("UPDATE followup_requests SET last_modified_by_id = ?, modified = ? WHERE id = ?",
                 (ctx.user["id"], now, rid))
            return self.ok()
        data = self._followup_fields(data)
        if "target_group_ids" in data:
            # docs/contracts.md, SP 3.4 reads SkyPortal's code as "replaces the target groups", but a running
            # SkyPortal answers such a PUT with 500 (a SkyPortal bug, issue 7 item 3) and changes nothing:
            # answer as it does, so that a client sending them is caught here and not on Fritz.
            raise ApiError(500, f"Internal Server Error: updating the target groups of follow-up request {rid} "
                                "failed (SkyPortal does not accept target_group_ids in this PUT)")
        existing = r["status"].lower()
        resubmit = "failed to submit" in existing or "rejected" in existing
        verb = "submit" if resubmit else "update"
        inst = st.request_instrument(r)
        if not resubmit and inst.get("api_classname") != "SEDMAPI":
            raise ApiError(400, "Cannot update requests on this instrument.")
        if "payload" not in data:
            raise ApiError(500, "'payload'")
        if st.obj(data["obj_id"]) is None or st.allocation(data["allocation_id"]) is None:
            what = "obj_id" if st.obj(data["obj_id"]) is None else "allocation_id"
            raise ApiError(400, f"Failed to {verb} follow-up request: "
                                f"(psycopg2.errors.ForeignKeyViolation) insert or update on table "
                                f'"followuprequests" violates foreign key constraint "followuprequests_{what}_fkey"')
        payload = data["payload"]
        if inst.get("api_classname") == "SEDMAPI" and isinstance(payload, dict):
            payload = sedm_prepare_payload(payload, loads(r["payload"]) or {})
        with self._transaction(f"Failed to {verb} follow-up request", Fail):
            st.x("UPDATE followup_requests SET obj_id = ?, allocation_id = ?, payload = ?, status = ?,"
                 " last_modified_by_id = ?, modified = ? WHERE id = ?",
                 (data["obj_id"], data["allocation_id"], dumps(payload), data["status"], ctx.user["id"], now, rid))
            facility_call(st, rid, verb)
        return self.ok()

    def followup_delete(self, ctx: Ctx, request_id: str):
        st = self.store
        ctx.json()
        r = self._request_to_change(ctx, request_id)
        if st.request_instrument(r).get("api_classname") != "SEDMAPI":
            raise ApiError(400, "Cannot delete requests on this instrument.")
        with self._transaction("Failed to delete follow-up request", Fail):
            st.x("UPDATE followup_requests SET last_modified_by_id = ? WHERE id = ?", (ctx.user["id"], r["id"]))
            facility_call(st, r["id"], "delete")
        return self.ok()

    def followup_comment_put(self, ctx: Ctx, request_id: str):
        data = ctx.json()
        comment = str(data.get("comment")).strip()
        if comment in ("", "None"):
            comment = None
        rid = self._request_to_change(ctx, request_id, "followup_request_id", "Followup request {} not found.")["id"]
        self.store.x("UPDATE followup_requests SET comment = ?, modified = ? WHERE id = ?", (comment, utcnow(), rid))
        return self.ok({"id": rid})
