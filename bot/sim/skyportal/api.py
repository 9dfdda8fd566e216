"""The SkyPortal stand-in's API: the route table, authentication (tokens and ACLs) and dispatch to the handlers.

The handlers live by resource: groups.py (sysinfo, profile, groups, streams, allocations, instruments),
sources.py (sources, source_groups), comments.py (comments, annotations), followup.py (follow-up requests),
with constraints.py, default_followups.py and facility.py (the simulated SEDM queue) behind them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import unquote

from bot.sim.skyportal.comments import CommentsHandlers
from bot.sim.skyportal.constraints import ConstraintChecks
from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.default_followups import DefaultFollowups
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.followup import FollowupHandlers
from bot.sim.skyportal.groups import GroupsHandlers
from bot.sim.skyportal.schema import loads
from bot.sim.skyportal.sources import SourcesHandlers

if TYPE_CHECKING:
    from bot.sim.skyportal.server import SkyPortalSim

MALFORMED_AUTH = 'HTTP 401: Unauthorized (Credentials malformed; expected form "Authorization: token abc123")'
UNAUTHORIZED = "HTTP 401: Unauthorized"

_OBJ_ID = "(?P<obj_id>[^/]+)"
Route = tuple["re.Pattern[str]", dict[str, tuple[Callable, Any]]]


class SkyPortalApi(GroupsHandlers, SourcesHandlers, CommentsHandlers, FollowupHandlers, ConstraintChecks,
                   DefaultFollowups):
    """The endpoint implementations (one instance per simulator)."""

    def __init__(self, sim: "SkyPortalSim"):
        super().__init__(sim)
        auth = []  # auth only, no ACL
        self.routes: list[Route] = [(re.compile(p + "/?$"), m) for p, m in [
            (r"/api/sysinfo", {"GET": (self.sysinfo, None)}),
            (r"/api/internal/profile", {"GET": (self.profile, auth)}),
            (r"/api/groups", {"GET": (self.groups, auth)}),
            (r"/api/groups/(?P<group_id>[^/]+)", {"GET": (self.group_one, auth)}),
            (r"/api/streams", {"GET": (self.streams, auth)}),
            (r"/api/allocation", {"GET": (self.allocations, auth)}),
            (r"/api/allocation/(?P<allocation_id>[^/]+)", {"GET": (self.allocation_one, auth)}),
            (r"/api/instrument", {"GET": (self.instruments, auth)}),
            (r"/api/instrument/(?P<instrument_id>[^/]+)", {"GET": (self.instrument_one, auth)}),
            (r"/api/sources", {"GET": (self.sources_list, auth), "POST": (self.sources_post, ["Upload data"])}),
            (rf"/api/sources/{_OBJ_ID}/comments", {"GET": (self.comments_get, auth),
                                                   "POST": (self.comments_post, ["Comment"])}),
            (rf"/api/sources/{_OBJ_ID}/comments/(?P<comment_id>[^/]+)", {"GET": (self.comment_one, auth)}),
            (rf"/api/sources/{_OBJ_ID}/annotations", {"GET": (self.annotations_get, auth),
                                                      "POST": (self.annotations_post, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/annotations/(?P<annotation_id>[^/]+)", {
                "GET": (self.annotation_one, auth), "PUT": (self.annotation_put, ["Annotate"]),
                "DELETE": (self.annotation_delete, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/groups", {"GET": (self.source_groups_of, auth)}),
            (rf"/api/sources/{_OBJ_ID}", {"GET": (self.source_get, auth), "HEAD": (self.source_head, auth),
                                          "DELETE": (self.source_delete, ["Manage sources"])}),
            (r"/api/source_groups", {"POST": (self.source_groups_post, ["Upload data"])}),
            (rf"/api/source_groups/{_OBJ_ID}", {"PATCH": (self.source_groups_patch, ["Upload data"])}),
            (r"/api/followup_request", {"GET": (self.followup_list, auth),
                                        "POST": (self.followup_post, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)/comment", {
                "PUT": (self.followup_comment_put, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)", {
                "GET": (self.followup_one, auth), "PUT": (self.followup_put, ["Upload data"]),
                "DELETE": (self.followup_delete, ["Upload data"])}),
        ]]

    # ---- authentication / dispatch ----------------------------------------------------------------
    def authenticate(self, ctx: Ctx, acls: list[str]) -> None:
        """baselayer access.py: `token <id>` only; unknown token 401; expired user 403; missing ACL 401."""
        header = ctx.headers.get("Authorization")
        if not (header and header.startswith("token ")):
            raise ApiError(401, MALFORMED_AUTH)
        tok = self.store.token(header.replace("token", "").strip())
        if tok is None:
            raise ApiError(401, UNAUTHORIZED)
        user = self.store.user(tok["user_id"])
        if user is None:
            raise ApiError(401, UNAUTHORIZED)
        if user["expired"]:
            raise ApiError(403, "User account expired")
        tok_acls = loads(tok["acls"])
        if acls and "System admin" not in tok_acls and not set(acls) <= set(tok_acls):
            raise ApiError(401, UNAUTHORIZED)
        ctx.user, ctx.token = user, tok

    def dispatch(self, ctx: Ctx) -> tuple[int, dict | None]:
        for pattern, methods in self.routes:
            m = pattern.match(ctx.path)
            if not m:
                continue
            if ctx.method not in methods:
                raise ApiError(405, "HTTP 405: Method Not Allowed")
            func, acls = methods[ctx.method]
            if acls is not None:
                self.authenticate(ctx, acls)
            kwargs = {k: unquote(v) for k, v in m.groupdict().items()}
            return func(ctx, **kwargs)
        if ctx.path.startswith("/api/"):
            if ctx.method != "GET":
                raise ApiError(405, "HTTP 405: Method Not Allowed")
            self.authenticate(ctx, [])
            raise ApiError(400, "Invalid API endpoint")
        raise ApiError(404, "HTTP 404: Not Found")
