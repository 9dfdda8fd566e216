"""The bot's SkyPortal (Fritz) client: one method per endpoint it uses, plus their results.

The contract is ``shared/reference/skyportal-api.md`` (cited below as SP <section>). The HTTP
transport (auth header, token bucket, defensive decoding, retries of idempotent calls only, token
scrubbing) is :class:`bot.skyportal.transport.Transport`, which :class:`SkyPortalClient` holds.
``POST /api/followup_request`` is never retried (SP 7.2): its outcome is reported instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import requests

from bot.ids import OBJECT_ID_RE  # docs/contracts.md: SkyPortal's object ids
from bot.retry import TRANSIENT_HTTP_STATUSES
from bot.skyportal.errors import SkyPortalError
from bot.skyportal.transport import RateLimiter, Transport, raw_error_text

__all__ = [
    "CommentResult",
    "FollowupResult",
    "RateLimiter",
    "SaveResult",
    "SkyPortalClient",
    "SourceView",
    "SkyPortalError",
]

log = logging.getLogger(__name__)

FOLLOWUP_PAGE_SIZE = 1000  # SP 3.3: numPerPage max 1000
REQUIRED_ACLS = ("Upload data", "Comment", "Annotate")  # SP 0.1
_ORIGIN_RE = re.compile(r"^\w+")  # SP 2.2


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaveResult:
    """Outcome of a save, per requested group id (:meth:`SkyPortalClient.post_source`).

    saved: saved (active) by this call; pending: landed as a pending invitation (``requested`` and
    not active), i.e. NOT saved; already: was already actively saved before the call (nothing posted
    for it); missing: the server answered success but did not list the group (treat as not saved).
    """

    saved: list[int]
    pending: list[int]
    already: list[int]
    missing: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CommentResult:
    """Outcome of :meth:`SkyPortalClient.post_comment`: merged is True when SkyPortal already held the same
    comment (same text, author and groups) and answered its id with "Same comment already exists."."""

    comment_id: int
    merged: bool = False


@dataclass
class SourceView:
    """What Fritz holds of one source: ONE ``GET /api/sources/{id}?includeRequested=true`` (SP 1.3, 8).

    exists: False after a 404 (no Obj: then it has no groups, follow-up requests nor annotations).
    groups: group id -> row (``active``, ``requested``, ``saved_at``) for active and requested rows.
    followup_requests: every request whose status is not "deleted" (SP 1.3 leaves deleted ones out;
    `SkyPortalClient.followup_requests` lists them too).
    created: set by the bot when its own save created the Obj after this view was read (so the Obj has no
    request, deleted or not, but the ones the bot added to `followup_requests` since).
    """

    obj_id: str
    exists: bool
    groups: dict[int, dict] = field(default_factory=dict)
    followup_requests: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    created: bool = False

    @property
    def active_groups(self) -> set[int]:
        return {gid for gid, g in self.groups.items() if g.get("active", True) is not False}

    def annotation_id(self, origin: str) -> int | None:
        return _find_annotation(self.annotations, origin)


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


# ------------------------------------------------------------------------------------------------
# client
# ------------------------------------------------------------------------------------------------
START_RETRIES = 1  # check(): retries of its first request (an unreachable server is said quickly)


class SkyPortalClient:
    """SkyPortal/Fritz REST client for the bot: one method per endpoint, over the
    :class:`~bot.skyportal.transport.Transport` it builds from its arguments (see
    :mod:`bot.skyportal.transport` for the transport rules)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        followup_timeout_s: float = 30.0,
        rate_limit_per_s: float | None = 5.0,
        rate_limit_burst: int = 2,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_retry_after_s: float = 120.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = Transport(
            url, token, timeout_s=timeout_s, followup_timeout_s=followup_timeout_s,
            rate_limit_per_s=rate_limit_per_s, rate_limit_burst=rate_limit_burst, max_retries=max_retries,
            backoff_s=backoff_s, max_backoff_s=max_backoff_s, max_retry_after_s=max_retry_after_s,
            session=session, sleep=sleep, clock=clock,
        )
        # filled in by profile()
        self._profile_cache: dict | None = None
        self._token_acls_cache: set[str] | None = None
        self._token_acls_known = False

    @property
    def url(self) -> str:
        return self.transport.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, token=<redacted>)"

    __str__ = __repr__

    def __getstate__(self):
        raise TypeError(f"{type(self).__name__} holds a secret token and cannot be pickled")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "SkyPortalClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _get(self, path: str, params: Mapping | None = None) -> Any:
        return self.transport.request("GET", path, params=params, retry=True)

    # -- token and configuration -----------------------------------------------------------------
    def profile(self, retries: int | None = None) -> dict:
        """``GET /api/internal/profile`` (SP 4.6): the token's user; 401 means the token is invalid.

        Returned token ids are removed (a token's id IS its secret value); the entry for this client's
        token gets ``"this_token": True``.
        """
        try:
            data = self.transport.request("GET", "/api/internal/profile", retry=True, retries=retries)
        except SkyPortalError as e:
            if e.status == 401:
                raise SkyPortalError(
                    401,
                    "SkyPortal refused the API token (HTTP 401 on /api/internal/profile): check the "
                    "token value and the 'Authorization: token <token>' form",
                    e.method,
                    e.path,
                    transient=False,
                ) from None
            raise
        if not isinstance(data, dict):
            raise SkyPortalError(200, "profile data is not an object", "GET", "/api/internal/profile")
        acls: set[str] | None = None
        tokens_out = []
        for t in data.get("tokens") or []:
            if not isinstance(t, dict):
                continue
            t = dict(t)
            tid = t.pop("id", None)
            # the transport already replaced our token with "<redacted>" in returned data
            mine = tid == "<redacted>" or self.transport.is_token(tid)
            if mine:
                t["this_token"] = True
                acls = {str(a) for a in (t.get("acls") or [])}
            tokens_out.append(t)
        data["tokens"] = tokens_out
        self._profile_cache = data
        self._token_acls_cache = acls
        self._token_acls_known = True
        return data

    def token_acls(self) -> set[str] | None:
        """The token's own ACLs from ``tokens[].acls`` of the profile (SP 4.6, not the user's
        ``permissions``); None if the profile does not list this token (e.g. it was created by
        another user)."""
        if not self._token_acls_known:
            self.profile()
        return None if self._token_acls_cache is None else set(self._token_acls_cache)

    def groups(self) -> dict:
        """``GET /api/groups`` (SP 4.2): ``{"user_groups", "user_accessible_groups", "all_groups"}``."""
        data = self._get("/api/groups")
        if not isinstance(data, dict):
            raise SkyPortalError(200, "unexpected /api/groups data shape", "GET", "/api/groups")
        return data

    def group(self, group_id: int) -> dict:
        """``GET /api/groups/{id}`` (SP 4.2), including ``users`` with ``can_save``."""
        return self._get(f"/api/groups/{int(group_id)}")

    def allocations(self) -> list[dict]:
        """``GET /api/allocation`` (SP 4.1): the allocations of the owner's groups."""
        data = self._get("/api/allocation")
        if not isinstance(data, list):
            raise SkyPortalError(200, "unexpected /api/allocation data shape", "GET", "/api/allocation")
        return data

    def check(
        self,
        group_ids: Iterable[int],
        allocation_ids: Iterable[int],
        *,
        acls: Iterable[str] = REQUIRED_ACLS,
    ) -> None:
        """Validate the configuration against the server at start.

        - the token is valid (401 -> SkyPortalError);
        - the token holds ``acls`` (``System admin`` bypasses); if the profile does not list the token
          the check is skipped with a warning;
        - each group id is one of the user's groups and the user may save to it (``can_save``);
        - each allocation id is visible (SP 4.1: only allocations of the owner's groups are) and
          belongs to one of the user's groups.
        Raises ValueError naming the bad id / ACL. The first request is retried once only
        (`START_RETRIES`): an unreachable Fritz is said in seconds, and the supervisor starts again later.
        """
        prof = self.profile(retries=START_RETRIES)
        user_id = prof.get("id")
        need = [a for a in acls]
        token_acls = self.token_acls()
        if token_acls is None:
            log.warning("the profile does not list this token; cannot verify its ACLs %s", need)
        elif "System admin" not in token_acls:
            missing = [a for a in need if a not in token_acls]
            if missing:
                raise ValueError(
                    f"the SkyPortal token lacks ACL(s) {missing} (has {sorted(token_acls)}); "
                    "SkyPortal answers 401 to calls that need them"
                )

        gids = [_as_id("group id", g) for g in group_ids]
        aids = [_as_id("allocation id", a) for a in allocation_ids]
        gdata = self.groups()
        user_groups = {g.get("id"): g for g in gdata.get("user_groups") or [] if isinstance(g, dict)}
        known = {
            g.get("id")
            for key in ("user_accessible_groups", "all_groups")
            for g in gdata.get(key) or []
            if isinstance(g, dict)
        }
        for gid in gids:
            if gid not in user_groups:
                if gid in known:
                    raise ValueError(f"group {gid}: the bot's user is not a member, so it cannot save to it")
                raise ValueError(f"group {gid}: no such group (or not visible to the bot's user)")
            users = self.group(gid).get("users")
            if isinstance(users, list):
                me = next((u for u in users if isinstance(u, dict) and u.get("id") == user_id), None)
                if me is None:
                    raise ValueError(f"group {gid}: the bot's user is not listed among its members")
                if me.get("can_save") is False:
                    raise ValueError(f"group {gid}: the bot's user has can_save=false there")

        allocs = {a.get("id"): a for a in self.allocations() if isinstance(a, dict)}
        for aid in aids:
            a = allocs.get(aid)
            if a is None:
                raise ValueError(
                    f"allocation {aid}: not found among the allocations visible to the bot's user "
                    "(it must belong to one of the user's groups)"
                )
            if a.get("group_id") is not None and a.get("group_id") not in user_groups:
                raise ValueError(f"allocation {aid}: its group {a.get('group_id')} is not one of the user's groups")

    # -- sources ---------------------------------------------------------------------------------
    def source_view(self, obj_id: str) -> SourceView:
        """``GET /api/sources/{obj_id}?includeRequested=true`` (SP 1.3): its groups (active and requested),
        follow-up requests (not deleted) and annotations; ``exists=False`` on 404 (no such Obj).

        Any existing Obj gives 200, saved or not (``groups == []``).
        """
        path = f"/api/sources/{_obj_path(obj_id)}"
        try:
            src = self._get(path, {"includeRequested": "true"})
        except SkyPortalError as e:
            if e.status == 404:
                return SourceView(obj_id, False)
            raise
        if not isinstance(src, dict):
            raise SkyPortalError(200, f"no source in answer: {src!r}", "GET", path)
        return SourceView(obj_id, True, _group_rows(src),
                          [r for r in src.get("followup_requests") or [] if isinstance(r, dict)],
                          [a for a in src.get("annotations") or [] if isinstance(a, dict)])

    def post_source(
        self, obj_id: str, group_ids: Iterable[int], ra: float | None = None, dec: float | None = None
    ) -> SaveResult:
        """Save to groups with ONE ``POST /api/sources`` (idempotent, SP 1.1); nothing is read after it.

        ``ra``/``dec`` are sent when known (required for a new Obj, not written for an existing one).
        ``saved_to_groups`` lists every requested group the source is now saved to (already saved ones
        included, SP 1.1), reported as ``saved``; a requested group it leaves out is ``missing``.
        """
        gids = list(dict.fromkeys(_as_id("group id", g) for g in group_ids))
        _obj_path(obj_id)
        body: dict[str, Any] = {"id": obj_id, "group_ids": gids}
        if ra is not None and dec is not None:
            body["ra"], body["dec"] = float(ra), float(dec)
        data = self.transport.request("POST", "/api/sources", body=body, retry=True)
        listed = data.get("saved_to_groups") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise SkyPortalError(200, f"no saved_to_groups in answer: {data!r}", "POST", "/api/sources")
        listed = {g for g in listed if isinstance(g, int)}
        return SaveResult([g for g in gids if g in listed], [], [], [g for g in gids if g not in listed])

    # -- comments and annotations ----------------------------------------------------------------
    def post_comment(self, obj_id: str, text: str, group_ids: Iterable[int] | None = None) -> "CommentResult":
        """``POST /api/sources/{obj_id}/comments`` (SP 2.1): the comment id, and whether SkyPortal merged it.

        Without ``group_ids`` the comment goes to the sitewide public group. An identical comment
        (same text, author, groups) returns the existing id ("Same comment already exists."), which is
        why this call is retried safely.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("comment text is empty")
        body: dict[str, Any] = {"text": text}
        if group_ids is not None:
            gl = [_as_id("group id", g) for g in group_ids]
            if gl:
                body["group_ids"] = gl
        data = self.transport.request(  # unmasked: only its id and whether it was merged are returned
            "POST", f"/api/sources/{_obj_path(obj_id)}/comments", body=body, retry=True, unmasked=True
        )
        if not isinstance(data, dict) or "comment_id" not in data:
            raise SkyPortalError(200, f"no comment_id in answer: {data!r}", "POST", f"/api/sources/{obj_id}/comments")
        merged = "same comment already exists" in str(data.get("message") or "").lower()
        return CommentResult(int(data["comment_id"]), merged)

    def annotations(self, obj_id: str) -> list[dict]:
        """``GET /api/sources/{obj_id}/annotations`` (SP 2.2)."""
        data = self._get(f"/api/sources/{_obj_path(obj_id)}/annotations")
        return data if isinstance(data, list) else []

    def upsert_annotation(
        self, obj_id: str, origin: str, data: Mapping[str, Any], group_ids: Iterable[int] | None = None
    ) -> int:
        """Create or update the annotation of ``origin`` on ``obj_id`` (unique per (obj, origin), SP 2.2).

        GET the annotations; PUT ``.../annotations/{id}`` if one has this origin, else POST; a POST
        answered 400 "Annotation already exists" (a race, or a retried POST that had landed) is
        followed by a re-GET and a PUT. Returns the annotation id. Without ``group_ids`` a new
        annotation goes to all of the bot's groups.
        """
        return self._upsert(obj_id, origin, *_annotation(obj_id, origin, data, group_ids))[0]

    def annotate(
        self, obj_id: str, origin: str, data: Mapping[str, Any], group_ids: Iterable[int] | None = None,
        annotation_id: int | None = None,
    ) -> tuple[int, bool]:
        """Create or update the ``origin`` annotation in one request when possible; (id, created).

        With a known ``annotation_id`` (journaled from an earlier call): ``PUT`` it. Otherwise ``POST``.
        A PUT refused (the annotation is gone or not ours, 400/403/404) or a POST answered "Annotation
        already exists" falls back to :meth:`upsert_annotation` (read the annotations, then PUT or POST).
        """
        base, body = _annotation(obj_id, origin, data, group_ids)
        try:
            if annotation_id is not None:
                return self._put_annotation(base, _as_id("annotation id", annotation_id), body), False
            return self._post_annotation(base, body), True
        except SkyPortalError as e:
            exists = annotation_id is None and e.status == 400 and e.says("already exists")
            if not exists and not (annotation_id is not None and e.status in (400, 403, 404)):
                raise
        return self._upsert(obj_id, origin, base, body)

    def _upsert(self, obj_id: str, origin: str, base: str, body: dict[str, Any]) -> tuple[int, bool]:
        """Read the annotations once: PUT the one of ``origin``, else POST (a lost race: re-read, PUT);
        (id, whether that read found none)."""
        existing = _find_annotation(self.annotations(obj_id), origin)
        if existing is not None:
            return self._put_annotation(base, existing, body), False
        try:
            return self._post_annotation(base, body), True
        except SkyPortalError as e:
            if e.status == 400 and e.says("already exists"):
                again = _find_annotation(self.annotations(obj_id), origin)
                if again is not None:
                    return self._put_annotation(base, again, body), True
            raise

    def _put_annotation(self, base: str, ann_id: int, body: dict[str, Any]) -> int:
        self.transport.request("PUT", f"{base}/{int(ann_id)}", body=body, retry=True)
        return int(ann_id)

    def _post_annotation(self, base: str, body: dict[str, Any]) -> int:
        res = self.transport.request("POST", base, body=body, retry=True)
        if not isinstance(res, dict) or "annotation_id" not in res:
            raise SkyPortalError(200, f"no annotation_id in answer: {res!r}", "POST", base)
        return int(res["annotation_id"])

    # -- follow-up requests ----------------------------------------------------------------------
    def followup_requests(self, obj_id: str, allocation_id: int | None = None) -> list[dict]:
        """The follow-up requests of exactly ``obj_id`` (SP 3.3).

        ``GET /api/followup_request?sourceID=&allocationID=&numPerPage=1000&pageNumber=`` over all
        pages, then filtered client-side on ``obj_id ==`` (``sourceID`` is a substring match) and on
        ``allocation_id``. Includes ``deleted`` requests.
        """
        _check_obj_id(obj_id)
        params: dict[str, Any] = {"sourceID": obj_id, "numPerPage": FOLLOWUP_PAGE_SIZE}
        if allocation_id is not None:
            params["allocationID"] = _as_id("allocation id", allocation_id)
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
        _check_obj_id(obj_id)
        body: dict[str, Any] = {
            "payload": dict(payload),
            "obj_id": obj_id,
            "allocation_id": _as_id("allocation id", allocation_id),
        }
        data = self.transport.request(
            "PUT", f"/api/followup_request/{_as_id('request id', request_id)}", body=body, retry=True
        )
        return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------------------------
# helpers


def _as_id(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} {v!r} is not an integer")
    return v


def _check_obj_id(obj_id: Any) -> None:
    if not isinstance(obj_id, str) or not OBJECT_ID_RE.match(obj_id):
        raise ValueError(f"obj_id {obj_id!r} is not a valid SkyPortal object id")


def _obj_path(obj_id: str) -> str:
    _check_obj_id(obj_id)
    return quote(obj_id, safe="")


def _group_rows(src: dict | None) -> dict[int, dict]:
    if not isinstance(src, dict):
        return {}
    return {g["id"]: g for g in src.get("groups") or [] if isinstance(g, dict) and "id" in g}


def _annotation(obj_id: str, origin: str, data: Mapping[str, Any],
                group_ids: Iterable[int] | None) -> tuple[str, dict[str, Any]]:
    """The annotations' path of ``obj_id`` and the one body of a POST or PUT of ``origin`` (SP 2.2)."""
    if not isinstance(origin, str) or not _ORIGIN_RE.match(origin):
        raise ValueError(f"annotation origin {origin!r} must start with a word character")
    if not isinstance(data, Mapping):
        raise ValueError("annotation data must be a mapping")
    base = f"/api/sources/{_obj_path(obj_id)}/annotations"
    body: dict[str, Any] = {"origin": origin, "data": dict(data)}
    gl = None if group_ids is None else [_as_id("group id", g) for g in group_ids]
    if gl:
        body["group_ids"] = gl
    return base, body


def _find_annotation(anns: list[dict], origin: str) -> int | None:
    for a in anns:
        if isinstance(a, dict) and a.get("origin") == origin and a.get("id") is not None:
            return int(a["id"])
    return None
