"""The SkyPortal stand-in's API: the route table, authentication (tokens and ACLs) and dispatch to the handlers.

The handlers live by resource, one object each (composition: no handler reaches into another's helpers):
groups.py (sysinfo, profile, groups, streams, allocations, instruments), sources.py (sources, source_groups),
comments.py (comments, annotations), followup.py (follow-up requests), with constraints.py,
default_followups.py, facility.py (the simulated SEDM queue) and visibility.py (who sees what) behind them.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import unquote

from bot.sim.skyportal.comments import CommentsHandlers
from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.default_followups import DefaultFollowups
from bot.sim.skyportal.envelope import Handlers
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.followup import FollowupHandlers
from bot.sim.skyportal.groups import GroupsHandlers
from bot.sim.skyportal.schema import loads
from bot.sim.skyportal.sources import SourcesHandlers

MALFORMED_AUTH = 'HTTP 401: Unauthorized (Credentials malformed; expected form "Authorization: token abc123")'
UNAUTHORIZED = "HTTP 401: Unauthorized"

_OBJ_ID = "(?P<obj_id>[^/]+)"
Route = tuple["re.Pattern[str]", dict[str, tuple[Callable, Any]]]


class SkyPortalApi:
    """The routes, over one handler object per resource (one instance per simulator). `auto_followups`
    collects the follow-up requests the server posts itself (DefaultFollowupRequests)."""

    def __init__(self, store, auto_followups: list[dict]):
        self.store = store
        self.envelope = Handlers(store)
        self.groups = g = GroupsHandlers(store)
        self.comments = c = CommentsHandlers(store)
        self.followups = f = FollowupHandlers(store)
        self.default_followups = DefaultFollowups(store, f.post_followup, auto_followups)
        self.sources = s = SourcesHandlers(store, self.default_followups.run)
        auth = []  # auth only, no ACL
        self.routes: list[Route] = [(re.compile(p + "/?$"), m) for p, m in [
            (r"/api/sysinfo", {"GET": (g.sysinfo, None)}),
            (r"/api/internal/profile", {"GET": (g.profile, auth)}),
            (r"/api/groups", {"GET": (g.groups, auth)}),
            (r"/api/groups/(?P<group_id>[^/]+)", {"GET": (g.group_one, auth)}),
            (r"/api/streams", {"GET": (g.streams, auth)}),
            (r"/api/allocation", {"GET": (g.allocations, auth)}),
            (r"/api/allocation/(?P<allocation_id>[^/]+)", {"GET": (g.allocation_one, auth)}),
            (r"/api/instrument", {"GET": (g.instruments, auth)}),
            (r"/api/instrument/(?P<instrument_id>[^/]+)", {"GET": (g.instrument_one, auth)}),
            (r"/api/sources", {"GET": (s.sources_list, auth), "POST": (s.sources_post, ["Upload data"])}),
            (rf"/api/sources/{_OBJ_ID}/comments", {"GET": (c.comments_get, auth),
                                                   "POST": (c.comments_post, ["Comment"])}),
            (rf"/api/sources/{_OBJ_ID}/comments/(?P<comment_id>[^/]+)", {"GET": (c.comment_one, auth)}),
            (rf"/api/sources/{_OBJ_ID}/annotations", {"GET": (c.annotations_get, auth),
                                                      "POST": (c.annotations_post, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/annotations/(?P<annotation_id>[^/]+)", {
                "GET": (c.annotation_one, auth), "PUT": (c.annotation_put, ["Annotate"]),
                "DELETE": (c.annotation_delete, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/groups", {"GET": (s.source_groups_of, auth)}),
            (rf"/api/sources/{_OBJ_ID}", {"GET": (s.source_get, auth), "HEAD": (s.source_head, auth),
                                          "DELETE": (s.source_delete, ["Manage sources"])}),
            (r"/api/source_groups", {"POST": (s.source_groups_post, ["Upload data"])}),
            (rf"/api/source_groups/{_OBJ_ID}", {"PATCH": (s.source_groups_patch, ["Upload data"])}),
            (r"/api/followup_request", {"GET": (f.followup_list, auth),
                                        "POST": (f.followup_post, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)/comment", {
                "PUT": (f.followup_comment_put, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)", {
                "GET": (f.followup_one, auth), "PUT": (f.followup_put, ["Upload data"]),
                "DELETE": (f.followup_delete, ["Upload data"])}),
        ]]

    def error_body(self, message: str) -> dict:
        return self.envelope.error_body(message)

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
