"""The SkyPortal client's follow-up request calls (SP 3) and the outcome of a POST.

``POST /api/followup_request`` is never retried (SP 7.2): its outcome is reported instead. Mixed
into :class:`bot.skyportal.client.SkyPortalClient`; see :mod:`bot.skyportal.endpoints`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

from bot.retry import TRANSIENT_HTTP_STATUSES
from bot.skyportal.endpoints import Endpoints, as_id, check_obj_id
from bot.skyportal.errors import SkyPortalError
from bot.skyportal.transport import raw_error_text

log = logging.getLogger("bot.skyportal.client")  # the client's logger: its lines keep their name

FOLLOWUP_PAGE_SIZE = 1000  # SP 3.3: numPerPage max 1000

FollowupOutcome = Literal["posted", "ignored", "rejected", "failed", "unknown"]


@dataclass(frozen=True)
class FollowupResult:
    """Outcome of ONE ``POST /api/followup_request`` (never retried).

    outcome:
      - "posted": HTTP 200, a request row was created (``request_id``) and not rejected;
      - "ignored": HTTP 200 ``ignored: true`` — a constraint blocked it (``message`` says which);
      - "rejected": HTTP 200 with ``request_status`` "rejected: ..." — the facility refused it; a row
        with that status exists (``request_id``);
      - "failed": HTTP 4xx — refused; for a facility exception a committed row with status
        "failed to submit: ..." may nevertheless exist (SP 3.1);
      - "unknown": timeout, connection error, 5xx, 429 or an unreadable body — the request may or
        may not have been created: list the source's requests again before deciding; never re-POST
        blindly.
    status: the request's status when known ("submitted", "rejected: ...").
    http_status: the HTTP status, None if no response arrived.
    response: the decoded JSON envelope when there was one (never contains the token).
    """

    outcome: FollowupOutcome
    request_id: int | None
    status: str | None
    message: str | None
    response: dict | None
    http_status: int | None = None
    raw_message: str | None = field(default=None, repr=False, compare=False)  # unmasked, to interpret only


class FollowupCalls(Endpoints):
    """``/api/followup_request``: list a source's requests, submit one (never retried), update one."""

    def followup_requests(self, obj_id: str, allocation_id: int | None = None) -> list[dict]:
        """The follow-up requests of exactly ``obj_id`` (SP 3.3).

        ``GET /api/followup_request?sourceID=&allocationID=&numPerPage=1000&pageNumber=`` over all
        pages, then filtered client-side on ``obj_id ==`` (``sourceID`` is a substring match) and on
        ``allocation_id``. Includes ``deleted`` requests.
        """
        check_obj_id(obj_id)
        params: dict[str, Any] = {"sourceID": obj_id, "numPerPage": FOLLOWUP_PAGE_SIZE}
        if allocation_id is not None:
            params["allocationID"] = as_id("allocation id", allocation_id)
        out: list[dict] = []
        seen = 0
        page = 1
        while True:
            params["pageNumber"] = page
            data = self._get("/api/followup_request", dict(params))
            if not isinstance(data, dict):
                raise SkyPortalError(200, "unexpected follow-up list shape", "GET", "/api/followup_request")
            items = data.get("followup_requests") or []
            seen += len(items)
            out.extend(r for r in items if isinstance(r, dict))
            total = data.get("totalMatches")
            per_page = data.get("numPerPage") or FOLLOWUP_PAGE_SIZE
            if not items or len(items) < int(per_page) or (isinstance(total, int) and seen >= total):
                break
            page += 1
            if page > 1000:  # a runaway server; 1M requests of one source is not real
                raise SkyPortalError(200, "follow-up listing did not end", "GET", "/api/followup_request")
        res = [r for r in out if r.get("obj_id") == obj_id]
        if allocation_id is not None:
            res = [r for r in res if r.get("allocation_id") == allocation_id]
        return res

    def submit_followup(self, body: Mapping[str, Any]) -> FollowupResult:
        """ONE ``POST /api/followup_request`` (SP 3.1), never retried; see :class:`FollowupResult`."""
        if not isinstance(body, Mapping) or "obj_id" not in body or "allocation_id" not in body:
            raise ValueError("follow-up body needs obj_id and allocation_id (use followup.followup_body)")
        method, path = "POST", "/api/followup_request"
        try:
            r = self.transport.send(method, path, None, dict(body), self.transport.followup_timeout_s)
        except requests.RequestException as exc:
            msg = self.transport.redact(f"{type(exc).__name__}: {exc}")
            log.warning("follow-up POST for %s: no answer (%s); outcome unknown", body.get("obj_id"), msg)
            return FollowupResult("unknown", None, None, msg, None, None)
        env = self.transport.scrub(r.envelope) if r.envelope is not None else None
        if r.status == 200 and env is not None and env.get("status") == "success":
            raw = r.envelope.get("data") if isinstance(r.envelope.get("data"), dict) else {}  # read unmasked
            data = env.get("data") if isinstance(env.get("data"), dict) else {}  # returned masked
            if raw.get("ignored") is True:
                return FollowupResult("ignored", None, None, data.get("message"), env, 200)
            rid = raw.get("id")
            rid = int(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
            rstatus = data.get("request_status")
            rstatus = None if rstatus is None else str(rstatus)
            if "rejected" in str(raw.get("request_status") or "").lower():
                return FollowupResult("rejected", rid, rstatus, rstatus, env, 200)
            return FollowupResult("posted", rid, rstatus, None, env, 200)
        msg, raw_msg = self.transport.error_text(r), raw_error_text(r)
        if r.status in TRANSIENT_HTTP_STATUSES or r.status >= 500 or env is None:
            return FollowupResult("unknown", None, None, msg, env, r.status, raw_msg)
        return FollowupResult("failed", None, None, msg, env, r.status, raw_msg)

    def update_followup(
        self,
        request_id: int,
        obj_id: str,
        allocation_id: int,
        payload: Mapping[str, Any],
    ) -> dict:
        """``PUT /api/followup_request/{id}`` in "Mode B" (SP 3.4): validated, calls the facility update.

        Replaces the whole payload: pass the full existing payload with the new priority. Never sends
        ``status`` (that would switch to "Mode A", skipping validation and the facility), nor
        ``target_group_ids``: the real server answers 500 to it (a SkyPortal bug, SP 8), which would be
        retried forever; the target groups set by the POST stay.
        """
        if not isinstance(payload, Mapping) or not payload:
            raise ValueError("update_followup needs the full payload (the PUT replaces it wholesale)")
        check_obj_id(obj_id)
        body: dict[str, Any] = {
            "payload": dict(payload),
            "obj_id": obj_id,
            "allocation_id": as_id("allocation id", allocation_id),
        }
        data = self.transport.request(
            "PUT", f"/api/followup_request/{as_id('request id', request_id)}", body=body, retry=True
        )
        return data if isinstance(data, dict) else {}
