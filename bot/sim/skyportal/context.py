"""One request as the SkyPortal stand-in's handlers see it (`Ctx`), and parsing of its query arguments."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.sim.skyportal.errors import ApiError

MAX_FOLLOWUP_REQUESTS = 1000
MAX_SOURCES_PER_PAGE = 500


class Ctx:
    """One request: its method, path, query, headers and body, and the authenticated user and token."""

    def __init__(self, store, method: str, path: str, query: dict, headers, raw: bytes,
                 uri: str | None = None):
        self.store = store  # store.Store
        self.method, self.path, self.query, self.headers, self.raw = method, path, query, headers, raw
        self.uri = uri or path
        self.inserted_sources: list[tuple[str, int]] = []
        self.user = None
        self.token = None

    def json(self) -> dict:
        """BaseHandler.get_json: empty -> {}; not JSON / not an object -> plain Exception (HTTP 500)."""
        if len(self.raw) == 0:
            return {}
        try:
            data = json.loads(self.raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(500, f"JSON decode of request body failed on {self.uri}."
                                " Please ensure all requests are of type application/json.") from None
        if not isinstance(data, dict):
            raise ApiError(500, "Please ensure posted data is of type application/json")
        return data

    def arg(self, name: str, default: Any = None) -> Any:
        """get_query_argument: a bool default parses true/yes/t/1 (case-insensitive) as True."""
        if name not in self.query:
            return default
        v = self.query[name]
        if isinstance(default, bool):
            return str(v).lower() in ("true", "yes", "t", "1")
        return v

    @property
    def admin(self) -> bool:
        return self.store.is_admin(self.user)

    def accessible(self) -> list[int]:
        return self.store.accessible_group_ids(self.user)


def _to_int(value: Any, message: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, message) from None


def int_arg(name: str, value: str) -> int:
    return _to_int(value, f"Invalid {name}: {value}")


def page_args(ctx: Ctx, default_n: int, max_n: int) -> tuple[int, int]:
    """utils/parse.py get_page_and_n_per_page."""
    p = _to_int(ctx.arg("pageNumber", 1), "Invalid page number value.")
    n = _to_int(ctx.arg("numPerPage", default_n), "Invalid numPerPage value.")
    if p < 1:
        raise ApiError(400, "Page number must be greater than 0.")
    if n < 1:
        raise ApiError(400, "Number per page must be greater than 0.")
    return p, min(n, max_n)


def sort_args(ctx: Ctx) -> tuple[str, str]:
    """sortBy (created_at, modified, status, obj; default created_at) and sortOrder (asc, desc; default asc)."""
    sort_by, order = ctx.arg("sortBy", "created_at"), ctx.arg("sortOrder", "asc")
    if sort_by not in ("created_at", "modified", "status", "obj"):
        raise ApiError(400, "Invalid sortBy value.")
    if order not in ("asc", "desc"):
        raise ApiError(400, "Invalid sortOrder value.")
    return sort_by, order


def parse_date(value: str) -> datetime:
    v = value.strip().replace("Z", "").replace("T", " ")
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        raise ApiError(500, f"Could not match input '{value}' to any of the following formats") from None
