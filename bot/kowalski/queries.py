"""Pure builders of the Kowalski query dicts the poller sends (no I/O here).

Every builder returns a complete `/api/queries` body (`{"query_type", "query", "kwargs"}`) for penquins'
`Kowalski.query`. Shapes follow docs/contracts.md, KW 5:

- `prefilter`: the MongoDB cut every polled alert must pass (positive subtraction, allowed programids,
  brighter than `mag_max`, extra config cuts AND-ed in);
- `poll_page`: one page of the keys (candid, objectId, candidate.jd) of the alerts of a `candidate.jd`
  window, keyset-paginated on (`candidate.jd`, `candid`) so that pages never skip or repeat alerts,
  whatever the page size;
- `alerts_by_candid`: the alert documents (candidate and the three cutouts) of a set of candids;
- `history_alerts` / `history_aux`: the light curve of a set of objects (`ZTF_alerts` candidates and the
  `ZTF_alerts_aux` prv_candidates).

Projections never mix inclusion and exclusion (except `_id`), and no query uses `find_one` (Kowalski
ignores its projection, gotcha 8).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

ALERTS = "ZTF_alerts"
AUX = "ZTF_alerts_aux"
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")

# isdiffpos is a string in ZTF packets: "t"/"1" positive, "f"/"0" negative subtraction
POSITIVE_ISDIFFPOS = ("t", "1")

# fields of each history entry (a candidate-like dict). ZTF_alerts candidates and aux prv_candidates
# share these names; prv_candidates lack the *hist fields, and non-detections lack candid/magpsf/
# sigmapsf/isdiffpos (null fields are stripped in aux).
HISTORY_FIELDS = (
    "jd", "fid", "pid", "candid", "programid", "magpsf", "sigmapsf", "diffmaglim", "isdiffpos",
    "ra", "dec", "rb", "drb", "drbversion", "magzpsci", "field", "rcid",
)
HISTORY_ALERT_ONLY_FIELDS = ("jdstarthist", "jdendhist", "ndethist", "ncovhist")

# the polling query reads only what orders and identifies an alert: the documents (a ~100-field
# candidate, the cutouts) are fetched chunk by chunk, so what a scan holds stays small for any window
POLL_PROJECTION = {"_id": 0, "candid": 1, "objectId": 1, "candidate.jd": 1}


def and_filters(*filters: Mapping[str, Any] | None) -> dict:
    """AND MongoDB filters together: merged into one dict when their keys are disjoint, else `$and`."""
    parts = [dict(f) for f in filters if f]
    if not parts:
        return {}
    merged: dict = {}
    for part in parts:
        if set(part) & set(merged):
            return {"$and": parts}
        merged.update(part)
    return merged


def prefilter(
    programids: Iterable[int] = (1, 2),
    mag_max: float | None = 19.0,
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """The pre-filter of the polling query (without the jd window).

    - positive subtractions only (`candidate.isdiffpos` in "t"/"1");
    - `candidate.programid` in `programids` (None: any);
    - `candidate.magpsf < mag_max` (the faintest per-alert magnitude a policy counts; None: no cut);
    - `extra`: further cuts from the configuration, AND-ed in.
    """
    base: dict = {"candidate.isdiffpos": {"$in": list(POSITIVE_ISDIFFPOS)}}
    if programids is not None:
        pids = [int(p) for p in programids]
        if not pids:
            raise ValueError("programids must not be empty")
        base["candidate.programid"] = {"$in": pids}
    if mag_max is not None:
        base["candidate.magpsf"] = {"$lt": float(mag_max)}
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError("extra pre-filter cuts must be a MongoDB filter (a mapping)")
    return and_filters(base, extra)


def jd_window(jd_from: float, jd_to: float) -> dict:
    """`candidate.jd` in [jd_from, jd_to)."""
    if not jd_from < jd_to:
        raise ValueError(f"empty jd window [{jd_from}, {jd_to})")
    return {"candidate.jd": {"$gte": float(jd_from), "$lt": float(jd_to)}}


def _kwargs(max_time_ms: int | None, **extra) -> dict:
    kw = {k: v for k, v in extra.items() if v is not None}
    if max_time_ms is not None:
        kw["max_time_ms"] = int(max_time_ms)
    return kw


def find(catalog: str, filter: Mapping, projection: Mapping | None = None, *, sort=None,
         limit: int | None = None, skip: int | None = None, max_time_ms: int | None = None) -> dict:
    """A generic `find` body."""
    query: dict = {"catalog": catalog, "filter": dict(filter)}
    if projection is not None:
        query["projection"] = dict(projection)
    kwargs = _kwargs(max_time_ms, sort=[list(s) for s in sort] if sort else None,
                     limit=int(limit) if limit else None, skip=int(skip) if skip else None)
    body = {"query_type": "find", "query": query}
    if kwargs:
        body["kwargs"] = kwargs
    return body


def aggregate(catalog: str, pipeline: Sequence[Mapping], *, max_time_ms: int | None = None) -> dict:
    body = {"query_type": "aggregate", "query": {"catalog": catalog, "pipeline": [dict(s) for s in pipeline]}}
    kwargs = _kwargs(max_time_ms)
    if kwargs:
        body["kwargs"] = kwargs
    return body


def after_key(last_jd: float, last_candid: int) -> dict:
    """Keyset condition: (candidate.jd, candid) strictly after (last_jd, last_candid)."""
    return {"$or": [
        {"candidate.jd": {"$gt": float(last_jd)}},
        {"candidate.jd": float(last_jd), "candid": {"$gt": int(last_candid)}},
    ]}


def poll_page(jd_from: float, jd_to: float, cuts: Mapping | None, *, limit: int,
              after: tuple[float, int] | None = None, max_time_ms: int | None = None) -> dict:
    """One page of the keys (candid, objectId, candidate.jd) of the alerts in [jd_from, jd_to) passing
    `cuts`, sorted by (candidate.jd, candid). `after` = the (jd, candid) of the last alert of the previous
    page."""
    if limit < 1:
        raise ValueError("page limit must be >= 1")
    filt = and_filters(jd_window(jd_from, jd_to), cuts, after_key(*after) if after else None)
    return find(ALERTS, filt, POLL_PROJECTION, sort=[("candidate.jd", 1), ("candid", 1)],
                limit=limit, max_time_ms=max_time_ms)


def alerts_by_candid(candids: Sequence[int], *, max_time_ms: int | None = None) -> dict:
    """The documents of the given candids, cutouts included (results are matched back by `candid`)."""
    ids = [int(c) for c in candids]
    return find(ALERTS, {"candid": {"$in": ids}}, {"_id": 0}, limit=len(ids), max_time_ms=max_time_ms)


def history_alerts(object_ids: Sequence[str], programids: Iterable[int] | None, *, limit: int,
                   after_candid: int | None = None, max_time_ms: int | None = None) -> dict:
    """`ZTF_alerts` candidates of the given objects (history fields only, no cutouts), by candid."""
    filt: dict = {"objectId": {"$in": [str(o) for o in object_ids]}}
    if programids is not None:
        filt["candidate.programid"] = {"$in": [int(p) for p in programids]}
    if after_candid is not None:
        filt["candid"] = {"$gt": int(after_candid)}
    projection = {"_id": 0, "objectId": 1, "candid": 1,
                  **{f"candidate.{f}": 1 for f in HISTORY_FIELDS + HISTORY_ALERT_ONLY_FIELDS}}
    return find(ALERTS, filt, projection, sort=[("candid", 1)], limit=limit, max_time_ms=max_time_ms)


def history_aux(object_ids: Sequence[str], *, max_time_ms: int | None = None) -> dict:
    """`ZTF_alerts_aux` prv_candidates of the given objects (one doc per object, `_id` = objectId).

    The programid cut is applied by the caller (aux holds every programid Kowalski ingested)."""
    ids = [str(o) for o in object_ids]
    projection = {"_id": 1, **{f"prv_candidates.{f}": 1 for f in HISTORY_FIELDS}}
    return find(AUX, {"_id": {"$in": ids}}, projection, limit=len(ids), max_time_ms=max_time_ms)


def body_size(query: Mapping) -> int:
    """Size in bytes of the JSON request body penquins would send for `query`."""
    return len(json.dumps(query, separators=(", ", ": ")).encode())
