"""The bot's SkyPortal (Fritz) client: one method per endpoint it uses.

The contract is ``docs/contracts.md`` (cited below as SP <section>). The HTTP
transport (auth header, token bucket, defensive decoding, retries of idempotent calls only, token
scrubbing) is :class:`bot.skyportal.transport.Transport`, which :class:`SkyPortalClient` holds.
The endpoint methods come in groups: the token and the start-up checks here, the source, comment and
annotation calls in :mod:`bot.skyportal.sources`, the follow-up request calls (``POST
/api/followup_request`` is never retried, SP 7.2) in :mod:`bot.skyportal.followups`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import requests

from bot.ratelimit import RateLimiter
from bot.skyportal.endpoints import as_id
from bot.skyportal.errors import SkyPortalError
from bot.skyportal.followups import FollowupCalls, FollowupResult
from bot.skyportal.sources import CommentResult, SaveResult, SourceCalls, SourceView
from bot.skyportal.transport import Transport

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

REQUIRED_ACLS = ("Upload data", "Comment", "Annotate")  # SP 0.1
START_RETRIES = 1  # check(): retries of its first request (an unreachable server is said quickly)


class SkyPortalClient(SourceCalls, FollowupCalls):
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

        gids = [as_id("group id", g) for g in group_ids]
        aids = [as_id("allocation id", a) for a in allocation_ids]
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
