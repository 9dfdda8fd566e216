"""What the groups of the SkyPortal client's endpoint methods share: the transport, a retried GET, ids, paths.

:class:`bot.skyportal.client.SkyPortalClient` is these groups together: the source, comment and
annotation calls (:mod:`bot.skyportal.sources`), the follow-up request calls
(:mod:`bot.skyportal.followups`) and, in the client itself, the token and the start-up checks.
The contract is ``docs/contracts.md`` (cited as SP <section>).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bot.ids import OBJECT_ID_RE  # docs/contracts.md: SkyPortal's object ids
from bot.skyportal.transport import Transport


class Endpoints:
    """A group of endpoint methods over ``self.transport`` (set by the client)."""

    transport: Transport

    def _get(self, path: str, params: Mapping | None = None) -> Any:
        return self.transport.request("GET", path, params=params, retry=True)


def as_id(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} {v!r} is not an integer")
    return v


def check_obj_id(obj_id: Any) -> None:
    if not isinstance(obj_id, str) or not OBJECT_ID_RE.match(obj_id):
        raise ValueError(f"obj_id {obj_id!r} is not a valid SkyPortal object id")


def obj_path(obj_id: str) -> str:
    check_obj_id(obj_id)
    return quote(obj_id, safe="")
