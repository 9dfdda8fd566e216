"""GET /api/sources, the list form, in the SkyPortal stand-in: which Source rows match, in which order, which page.

As SkyPortal's handler (SP handlers/api/source.py:2040-2420, cited as source.py) and `get_sources` (SP
handlers/api/sources.py:528-2655, cited as sources.py) at 8bd346c0 answer:

- `group_ids` (comma-separated): a value that is not a list of integers is an uncaught ValueError
  (source.py:2247-2253): HTTP 500. No `group_ids`: every accessible group (sources.py:685-688; an admin: no
  group filter). A group the user cannot access: 400 "Cannot retrieve sources: Selected group(s) not all
  accessible to user." (sources.py:689-692, source.py:2406-2410) -- for a group that does not exist too.
- The filters apply to each Source row (sources.py:717-725, :1033-1098): its group in `group_ids`; active
  (`includeRequested`: active or requested; `pendingOnly`: requested); `saved_at` strictly after `savedAfter`
  and strictly before `savedBefore` (`>` and `<`); `sourceID` a case-sensitive substring of the obj id
  (`objs.id LIKE '%'||:sourceID||'%'`, sources.py:760). A time that does not parse: 400 "Error parsing query
  params: ..." (source.py:2162-2204).
- `saveSummary=true`: the matching Source rows themselves, by their id ascending ("the order they were saved
  in", sources.py:1774-1784), `{group_id, obj_id, saved_by_id, saved_at, active, requested, unsaved_at, ...}`.
- Otherwise one entry per obj, sorted by `sortBy` (default `saved_at`: the obj's latest matching `saved_at`,
  sources.py:50-62, :1999-2066) in `sortOrder` (default `desc`, source.py:2079, sources.py:642-645; `alias`, `origin`,
  `redshift` NULLS LAST). Ties are in no guaranteed order on PostgreSQL; here by obj id.
- Paging (sources.py:1664-1672, :1792-1800, :2101-2107): `totalMatches` counts objs (or rows); no match: an empty
  page; a page starting past the end: an empty page (`start > total_matches`); the page starting exactly at the
  end (page 3 of 200 at 100 per page) goes on with no obj and fails at `obj_coords[:, 0]` (sources.py:2217-2218):
  400 "Cannot retrieve sources: too many indices for array: ..." (source.py:2411-2413). `group_id` is in the
  answer when one group was asked for (sources.py:1675-1677).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.sim.skyportal.context import Ctx, parse_date
from bot.sim.skyportal.errors import ApiError

SORT_BY = ("saved_at", "id", "alias", "origin", "ra", "dec", "redshift")  # sources.py:50-62 (less gcn_status, favorites)
NULL_FIELDS = ("origin", "alias", "redshift")  # sources.py:69-73
EMPTY_PAGE = ("Cannot retrieve sources: too many indices for array: array is 1-dimensional, but 2 were "
              "indexed")


@dataclass(frozen=True)
class ListQuery:
    group_ids: list[int] | None  # None: no group filter (an admin without group_ids)
    asked_groups: list[int]
    include_requested: bool
    pending_only: bool
    saved_after: datetime | None
    saved_before: datetime | None
    source_id: str | None
    sort_by: str
    sort_order: str
    save_summary: bool


def _time_arg(ctx: Ctx, name: str, field: str) -> datetime | None:
    value = ctx.arg(name)
    if value is None:
        return None
    try:
        return parse_date(str(value))
    except ApiError:
        raise ApiError(400, f"Error parsing query params: {{'{field}': ['Not a valid datetime.']}}.") from None


def list_query(ctx: Ctx) -> ListQuery:
    raw = ctx.arg("group_ids")
    asked: list[int] = []
    if raw is not None:
        try:
            asked = [int(x.strip()) for x in str(raw).split(",") if x.strip()]
        except ValueError:
            raise ApiError(500, f"Invalid group_ids field ({raw}; Could not parse all elements to integers") from None
    saved_after = _time_arg(ctx, "savedAfter", "saved_after")
    saved_before = _time_arg(ctx, "savedBefore", "saved_before")
    sort_by = ctx.arg("sortBy") or "saved_at"
    sort_order = ctx.arg("sortOrder", "desc") or "desc"
    try:
        if sort_order.lower() not in ("asc", "desc"):
            raise ValueError(f"Invalid sort_order: {sort_order}")
        if sort_by == "gcn_status":
            raise ValueError("Cannot sort by gcn_status without localization_dateobs")
        if sort_by not in SORT_BY:
            raise ValueError(f"Invalid sort_by: {sort_by}")
        acc = ctx.accessible()
        if not asked:
            group_ids = None if ctx.admin else acc
        elif not ctx.admin and not set(asked) <= set(acc):
            raise ValueError("Selected group(s) not all accessible to user.")
        else:
            group_ids = asked
    except ValueError as e:
        raise ApiError(400, f"Cannot retrieve sources: {e}") from None
    source_id = ctx.arg("sourceID")
    return ListQuery(group_ids, asked, ctx.arg("includeRequested", False), ctx.arg("pendingOnly", False),
                     saved_after, saved_before, str(source_id).strip() if source_id not in (None, "") else None,
                     sort_by, sort_order.lower(), ctx.arg("saveSummary", False))


def matching_rows(st, q: ListQuery) -> list:
    """The Source rows every filter keeps, by id."""
    out = []
    for s in st.q("SELECT * FROM sources ORDER BY id"):
        if q.group_ids is not None and s["group_id"] not in q.group_ids:
            continue
        state = (s["active"] or s["requested"]) if q.include_requested else \
            s["requested"] if q.pending_only else s["active"]
        if not state:
            continue
        saved = datetime.fromisoformat(s["saved_at"])
        if (q.saved_before is not None and not saved < q.saved_before) or \
                (q.saved_after is not None and not saved > q.saved_after):
            continue
        if q.source_id is not None and q.source_id not in s["obj_id"]:
            continue
        out.append(s)
    return out


def _envelope(q: ListQuery, p: int, n: int) -> dict:
    data = {"totalMatches": 0, "sources": [], "pageNumber": p, "numPerPage": n}
    if len(q.asked_groups) == 1:
        data["group_id"] = q.asked_groups[0]
    return data


def summary_page(st, q: ListQuery, p: int, n: int) -> dict:
    rows = matching_rows(st, q)
    data = _envelope(q, p, n)
    data["totalMatches"] = len(rows)
    start = (p - 1) * n
    if rows and start <= len(rows):
        data["sources"] = [st.source_row_dict(s) for s in rows[start:start + n]]
    return data


def obj_page(st, q: ListQuery, p: int, n: int) -> tuple[dict, list[str]]:
    """(the answer without its sources, the obj ids of the page in order)."""
    latest: dict[str, datetime] = {}
    for s in matching_rows(st, q):
        saved = datetime.fromisoformat(s["saved_at"])
        latest[s["obj_id"]] = max(saved, latest.get(s["obj_id"], saved))
    ids = sorted(latest)
    desc = q.sort_order == "desc"
    if q.sort_by == "saved_at":
        ids.sort(key=lambda oid: latest[oid], reverse=desc)
    elif q.sort_by == "id":
        ids.sort(reverse=desc)
    else:
        value = {oid: _obj_value(st, oid, q.sort_by) for oid in ids}
        known = sorted((oid for oid in ids if value[oid] is not None), key=lambda oid: value[oid], reverse=desc)
        nulls = [oid for oid in ids if value[oid] is None]
        ids = known + nulls if q.sort_by in NULL_FIELDS else (nulls + known if desc else known + nulls)
    data = _envelope(q, p, n)
    data["totalMatches"] = len(ids)
    start = (p - 1) * n
    if not ids or start > len(ids):
        return data, []
    if start == len(ids):
        raise ApiError(400, EMPTY_PAGE)
    return data, ids[start:start + n]


def _obj_value(st, obj_id: str, column: str):
    return st.obj_dict(st.obj(obj_id)).get(column)
