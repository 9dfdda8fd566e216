"""Labels from Fritz (`btsbot labels`): the sources saved to a group, their classifications and the first human
save and follow-up request of each, read through SkyPortal's API, as the rows `backtest --labels` reads
(`bot.backtest.labels`: `objectId,label,saved_at,triggered_at`, times ISO UTC).

Read from SkyPortal 8bd346c0 (the code Fritz runs; paths under skyportal/) and docs/contracts.md (SP sections):

- **The group's sources**: ONE paged list, `GET /api/sources?group_ids=G&savedAfter=…&savedBefore=…&sortBy=id&
  sortOrder=asc&numPerPage=N&pageNumber=k` (handlers/api/source.py:2040-2420 over handlers/api/sources.py
  `get_sources`). Each obj carries `groups` -- every Source row of it the user may read, each with `active`,
  `saved_at` and `saved_by` (a User dict with `is_bot`, sources.py:2151-2203) -- and `classifications` (the
  readable Classification rows: `classification`, `taxonomy_id`, `probability`, `ml`, `author_id`,
  `created_at`, sources.py:2290-2307). `saveSummary` gives the Source rows alone, without classifications: not
  used. The filters apply to the group's own row: active, `saved_at` strictly after `savedAfter` and before
  `savedBefore` (sources.py:1033-1090). Sorted on the obj id (unique, so pages neither overlap nor skip; the
  default `saved_at` order has ties); paged until `totalMatches` (`numPerPage` as the server answers it: it
  caps at 500), never past the last page (the page starting exactly at the end is a 400, sources.py:2217).
- **A group the token cannot read**: 400 "Cannot retrieve sources: Selected group(s) not all accessible to
  user." (sources.py:689-692, source.py:2406-2410), also for a group that does not exist: `GroupNotReadable`.
- **Human or not**: the token's own user (`GET /api/internal/profile`'s `id`), users flagged `is_bot` (the
  `users.is_bot` column, alembic aa6432209e3e) and `exclude_users` are not humans; nor is an unknown user.
- **saved_at**: the group's Source row's `saved_at` when its `saved_by` is a human, else none. There is one
  row per (obj, group); its `saved_at` is its first save and is kept when the row is re-activated, while
  `saved_by` becomes the re-saver (handlers/api/source.py:1004-1015): a source the bot saved first has no
  human save time in that group.
- **triggered_at**: the earliest `created_at` of a human's follow-up request for the obj, any status:
  `deleted` ones included (SkyPortal keeps the row, facility_apis/sedm.py:326-388; its creation is when a
  human asked for the spectrum, whatever became of it), as `rejected: …` and `failed to submit: …` ones. Read
  with ONE paged list of every visible request (`GET /api/followup_request?sortBy=created_at&sortOrder=asc
  &numPerPage=1000`, from `FOLLOWUP_LOOKBACK_DAYS` before `since`), matched on `obj_id ==` (a `sourceID`
  query is a substring match, followup_request.py:1359-1366, and one request per source). Only requests on
  allocations of the user's groups are visible (models/followup_request.py:209). A request SkyPortal posts
  itself on a save (DefaultFollowupRequest) has the saver as requester (followup_request.py:1031-1036): a
  human's save makes it a human's.
- **label**: 1 when a counted classification matches `positive_types` (re.search), 0 when the source has
  counted classifications and none matches, None (not written by default) when it has none. Counted: the
  human ones (`ml: false`); `include_ml` counts the machine ones too. The default `FRITZ_POSITIVE_TYPES` is
  the supernova subtree of tdtax 0.1.7 (pyproject.toml:34; Fritz's classifications are tdtax classes: `Ia`,
  `Ia-91T`, `Ib/c`, `Ic-BL`, `II`, `IIn`, `Supernova`, … -- not the Sample Explorer's `SN Ia`, also matched),
  without FBOT and Ca-rich.

The mapping (`label_rows`) is pure; `read_fritz_labels` does the reading over a `SkyPortalClient` (its
transport: the configured rate limit, retries of these GETs).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Iterable

from bot.skyportal.errors import SkyPortalError
from bot.timeutil import UNIX_EPOCH_JD

FRITZ_POSITIVE_TYPES = r"^(SN|Supernova$|Type I|I[abc]|II)"
SOURCES_PER_PAGE, MAX_SOURCES_PER_PAGE = 100, 500  # SP handlers/api/source.py:121-122
FOLLOWUP_PER_PAGE = 1000  # the maximum, SP handlers/api/followup_request.py:77
FOLLOWUP_LOOKBACK_DAYS = 30  # requests listed from this long before --since
COLUMNS = ("objectId", "label", "saved_at", "triggered_at")
_NOT_READABLE = "not all accessible"


class GroupNotReadable(Exception):
    """The token's user cannot read the group (or it does not exist); the message names the group."""


@dataclass(frozen=True)
class LabelRow:
    object_id: str
    label: int | None  # None: no counted classification
    saved_at: str | None = None  # ISO UTC, "...Z"
    triggered_at: str | None = None
    classes: tuple[str, ...] = ()


@dataclass
class FritzLabels:
    rows: list[LabelRow]
    source_pages: int = 0
    followup_pages: int = 0
    requests_read: int = 0
    excluded_users: set[int] = field(default_factory=set)

    @property
    def positives(self) -> int:
        return sum(r.label == 1 for r in self.rows)

    @property
    def negatives(self) -> int:
        return sum(r.label == 0 for r in self.rows)

    @property
    def unclassified(self) -> int:
        return sum(r.label is None for r in self.rows)


# ---- the mapping (pure) ----------------------------------------------------------------------------------
def utc_iso(text) -> str | None:
    """SkyPortal's naive UTC ISO time (SP 0.2: no offset) as ISO UTC with a Z; None stays None."""
    if not text:
        return None
    dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat() + "Z"


def _when(text) -> datetime:
    return datetime.fromisoformat(utc_iso(text)[:-1])


def is_human(user: dict | None, user_id, excluded: set[int]) -> bool:
    """A known user that is not excluded (the bot's own, --exclude-user) and not flagged `is_bot`."""
    uid = user.get("id") if isinstance(user, dict) and user.get("id") is not None else user_id
    if uid is None or uid in excluded:
        return False
    return not (isinstance(user, dict) and user.get("is_bot") is True)


def human_save(source: dict, group_id: int, excluded: set[int]) -> str | None:
    """The group's row's saved_at when a human saved it (see the module docstring)."""
    times = [g.get("saved_at") for g in source.get("groups") or []
             if isinstance(g, dict) and g.get("id") == group_id and g.get("active", True) is not False
             and g.get("saved_at") and is_human(g.get("saved_by"), None, excluded)]
    return utc_iso(min(times, key=_when)) if times else None


def counted_classes(source: dict, include_ml: bool = False) -> list[str]:
    return [str(c["classification"]) for c in source.get("classifications") or []
            if isinstance(c, dict) and c.get("classification") and (include_ml or c.get("ml") is not True)]


def label_of(classes: Iterable[str], positive: re.Pattern) -> int | None:
    classes = list(classes)
    if not classes:
        return None
    return int(any(positive.search(c) for c in classes))


def first_human_requests(requests: Iterable[dict], excluded: set[int]) -> dict[str, str]:
    """obj_id (exact) -> the ISO UTC created_at of its earliest request by a human, any status."""
    first: dict[str, datetime] = {}
    for r in requests:
        if not isinstance(r, dict) or not r.get("obj_id") or not r.get("created_at"):
            continue
        if not is_human(r.get("requester"), r.get("requester_id"), excluded):
            continue
        t = _when(r["created_at"])
        if r["obj_id"] not in first or t < first[r["obj_id"]]:
            first[r["obj_id"]] = t
    return {oid: t.isoformat() + "Z" for oid, t in first.items()}


def label_rows(sources: Iterable[dict], requests: Iterable[dict], group_id: int, excluded: set[int],
               positive: str | re.Pattern = FRITZ_POSITIVE_TYPES, include_ml: bool = False) -> list[LabelRow]:
    """One row per source (by objectId), from the list's sources and the follow-up requests."""
    pattern = re.compile(positive) if isinstance(positive, str) else positive
    triggered = first_human_requests(requests, excluded)
    rows = {}
    for s in sources:
        oid = s.get("id") if isinstance(s, dict) else None
        if not oid or oid in rows:
            continue
        classes = counted_classes(s, include_ml)
        rows[oid] = LabelRow(oid, label_of(classes, pattern), human_save(s, group_id, excluded), triggered.get(oid),
                             tuple(classes))
    return [rows[k] for k in sorted(rows)]


def write_labels_csv(rows: Iterable[LabelRow], out: IO[str], unclassified: str = "skip") -> int:
    """The CSV `backtest --labels` reads; an unclassified source is left out (`skip`) or written 0 (`0`).
    Returns the number of rows written."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    n = 0
    for r in rows:
        label = r.label if r.label is not None else (0 if unclassified == "0" else None)
        if label is None:
            continue
        w.writerow([r.object_id, label, r.saved_at or "", r.triggered_at or ""])
        n += 1
    return n


# ---- the reading ------------------------------------------------------------------------------------------
def _naive_iso(jd: float) -> str:
    """A JD as SkyPortal's naive UTC ISO, to the millisecond (a float JD carries ~40 us of noise)."""
    seconds = round((jd - UNIX_EPOCH_JD) * 86400.0, 3)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None).isoformat()


def _pages(client, path: str, params: dict, key: str, per_page: int) -> tuple[list[dict], int]:
    """Every item of a paged SkyPortal list: pages 1, 2, … until `totalMatches` (never past it)."""
    items: list[dict] = []
    page = 1
    while True:
        data = client._get(path, {**params, "pageNumber": page, "numPerPage": per_page})
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise SkyPortalError(200, f"unexpected {path} data shape (no {key!r} list)", "GET", path)
        batch = [x for x in data[key] if isinstance(x, dict)]
        items.extend(batch)
        served = int(data.get("numPerPage") or per_page)  # the server caps numPerPage silently (SP 0.6)
        total = int(data.get("totalMatches") or 0)
        if not batch or page * served >= total:
            return items, page
        page += 1


def read_group_sources(client, group_id: int, saved_after: str | None, saved_before: str | None,
                       page_size: int = SOURCES_PER_PAGE) -> tuple[list[dict], int]:
    params = {"group_ids": str(int(group_id)), "sortBy": "id", "sortOrder": "asc"}
    if saved_after:
        params["savedAfter"] = saved_after
    if saved_before:
        params["savedBefore"] = saved_before
    try:
        return _pages(client, "/api/sources", params, "sources", page_size)
    except SkyPortalError as e:
        if e.status == 400 and _NOT_READABLE in str(e.message):
            raise GroupNotReadable(f"group {group_id}: the Fritz token's user cannot read it (not a member, or no "
                                   f"such group): Fritz answered {e.message!r}") from None
        raise


def read_fritz_labels(client, group_id: int, since_jd: float | None = None, until_jd: float | None = None, *,
                      positive: str = FRITZ_POSITIVE_TYPES, include_ml: bool = False,
                      exclude_users: Iterable[int] = (), page_size: int = SOURCES_PER_PAGE,
                      now: datetime | None = None) -> FritzLabels:
    """Read the group's sources saved in (since, until) -- until: now when not given, so that saves made while
    reading do not shift the pages -- and the follow-up requests; map them to label rows."""
    me = client.profile()
    excluded = {int(u) for u in exclude_users} | ({me["id"]} if me.get("id") is not None else set())
    now = now or datetime.now(timezone.utc)
    before = _naive_iso(until_jd) if until_jd is not None else now.replace(tzinfo=None).isoformat()
    sources, source_pages = read_group_sources(client, group_id, _naive_iso(since_jd) if since_jd else None,
                                               before, page_size)
    params = {"sortBy": "created_at", "sortOrder": "asc"}
    if since_jd is not None:
        params["startDate"] = _naive_iso(since_jd - FOLLOWUP_LOOKBACK_DAYS)
    wanted = {s.get("id") for s in sources}
    requests, followup_pages = ([], 0) if not sources else \
        _pages(client, "/api/followup_request", params, "followup_requests", FOLLOWUP_PER_PAGE)
    mine = [r for r in requests if r.get("obj_id") in wanted]
    rows = label_rows(sources, mine, group_id, excluded, positive, include_ml)
    return FritzLabels(rows, source_pages, followup_pages, len(requests), excluded)
