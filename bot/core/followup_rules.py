"""Production's follow-up rules (pure): the POST body, the post/update/skip decision; their dates are in
:mod:`bot.core.followup_dates` (re-exported here).

No I/O here. Everything follows the contract in ``docs/contracts.md`` (its SP and
KW sections):

- POST body keys: SP 3.1 (marshmallow ``FollowupRequestPost``; an unknown key is a 400).
- Dates: Kowalski's ``"%Y-%m-%dT%H:%M:%S.%f"`` (SP 3.8, KW 4.3 step 4); SEDM copies them verbatim.
- Decision rules: Kowalski's ``alert_sentinel_skyportal`` (KW 4.4, SP 3.8 "Client-side checks"):
  keep requests whose status contains complete/submitted/deleted/failed, drop failed ones modified
  more than 12 h ago, match on allocation + payload subset (``compare_dicts``), then post / update /
  skip. One deliberate, more conservative addition is documented in :func:`plan_followup`.

A facility's payload model is in :mod:`bot.facilities` (SEDM: :mod:`bot.facilities.sedm`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.core.followup_dates import DATE_FORMAT, format_date, parse_timestamp, to_utc_naive
from bot.ids import OBJECT_ID_RE  # a follow-up's obj_id is the same Obj id (docs/contracts.md)

__all__ = [
    "DATE_FORMAT",
    "FAILED_RETRY_WINDOW",
    "PAYLOAD_IGNORED_KEYS",
    "Plan",
    "compare_payloads",
    "followup_body",
    "format_date",
    "is_number",
    "parse_timestamp",
    "plan_followup",
    "priority_key",
    "priority_should_update",
    "status_kind",
    "to_utc_naive",
]

# Keys ignored when deciding whether an existing request is "the same" (KW compare_dicts call).
PAYLOAD_IGNORED_KEYS = frozenset(
    {"priority", "urgency", "Urgency", "start_date", "end_date", "advanced", "observation_choices"}
)

# Failed requests modified less than this long ago still block a new POST (KW 4.4).
FAILED_RETRY_WINDOW = timedelta(hours=12)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def status_kind(status: Any) -> str | None:
    """Classify a free-text follow-up status by case-insensitive substring (SP 3.6, gotcha 7).

    Returns one of "failed", "rejected", "deleted", "complete", "submitted", "pending" or None.
    Order matters: ``failed to submit: ...`` contains "submit" but is a failure; "rejected: <body>"
    may contain anything in the facility body.
    """
    s = str(status or "").lower()
    if not s:
        return None
    if s.startswith("rejected"):
        return "rejected"
    if s.startswith("failed") or "failed" in s:
        return "failed"
    if "rejected" in s:
        return "rejected"
    if "deleted" in s:
        return "deleted"
    if "complete" in s:
        return "complete"
    if "submitted" in s:
        return "submitted"
    if "pending" in s:
        return "pending"
    return None


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _int_list(name: str, ids: Iterable[Any] | None) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, (str, bytes, Mapping)):
        raise ValueError(f"{name} must be a list of integer ids, got {type(ids).__name__}")
    out: list[int] = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"{name}: {i!r} is not an integer id")
        if i not in out:
            out.append(i)
    return out


def priority_key(payload: Mapping[str, Any]) -> str:
    """The payload key holding the priority: first of urgency/Urgency present, else priority (KW 4.3)."""
    for k in ("urgency", "Urgency"):
        if k in payload:
            return k
    return "priority"


def priority_should_update(existing: Any, new: Any, order: str = "asc") -> bool:
    """Kowalski's ``priority_should_update`` (KW utils.py:1425-1430): asc means a higher number wins."""
    if order not in ("asc", "desc"):
        raise ValueError(f"priority_order must be 'asc' or 'desc', got {order!r}")
    if order == "desc":
        return float(new) < float(existing)
    return float(new) > float(existing)


# ------------------------------------------------------------------------------------------------
# POST body
# ------------------------------------------------------------------------------------------------
def followup_body(
    obj_id: str,
    allocation_id: int,
    payload: Mapping[str, Any],
    ignore_source_group_ids: Iterable[int],
    target_group_ids: Iterable[int] = (),
    source_group_ids: Iterable[int] = (),
    *,
    ignore_allocation_ids: Iterable[int] = (),
    radius: float = 0.5,
) -> dict[str, Any]:
    """The ``POST /api/followup_request`` body, with only keys ``FollowupRequestPost`` accepts (SP 3.1).

    All production constraints are on: ``not_if_duplicates`` (server-side dedupe of
    submitted/completed requests within ``radius``), ``not_if_classified``, ``not_if_spectra_exist``,
    ``not_if_tns_classified``; ``radius`` 0.5 arcsec. List-valued keys are sent only when non-empty:
    ``ignore_source_group_ids`` (junk groups: skip if saved there), ``source_group_ids`` (require an
    active save in every one), ``target_group_ids``, ``ignore_allocation_ids``. ``comment``,
    ``watcher_ids`` and ``requester_id`` are NOT accepted by the server (400 Unknown field); post the
    comment separately.
    """
    if not isinstance(obj_id, str) or not OBJECT_ID_RE.match(obj_id):
        raise ValueError(f"obj_id {obj_id!r} is not a valid SkyPortal object id")
    if isinstance(allocation_id, bool) or not isinstance(allocation_id, int):
        raise ValueError(f"allocation_id {allocation_id!r} is not an integer id")
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    if not is_number(radius) or float(radius) <= 0:
        raise ValueError(f"radius must be a positive number of arcsec, got {radius!r}")
    body: dict[str, Any] = {
        "obj_id": obj_id,
        "allocation_id": allocation_id,
        "payload": dict(payload),
        "not_if_duplicates": True,
        "not_if_classified": True,
        "not_if_spectra_exist": True,
        "not_if_tns_classified": True,
        "radius": float(radius),
    }
    for key, ids in (
        ("target_group_ids", target_group_ids),
        ("source_group_ids", source_group_ids),
        ("ignore_source_group_ids", ignore_source_group_ids),
        ("ignore_allocation_ids", ignore_allocation_ids),
    ):
        lst = _int_list(key, ids)
        if lst:
            body[key] = lst
    return body


# ------------------------------------------------------------------------------------------------
# matching and planning
# ------------------------------------------------------------------------------------------------
def _sedm_obs_set(d: Mapping[str, Any]) -> set[str]:
    """KW compare_dicts' SEDM expansion: IFU / 3-shot = g,r,i / 4-shot = u,g,r,i / Mix = choices."""
    t = d.get("observation_type")
    if t == "Mix 'n Match":
        ch = d.get("observation_choices") or []
        return {str(c) for c in ch} if isinstance(ch, (list, tuple, set)) else set()
    t = str(t or "")
    out: set[str] = set()
    if "IFU" in t:
        out.add("IFU")
    if "3-shot" in t:
        out.update(("g", "r", "i"))
    elif "4-shot" in t:
        out.update(("u", "g", "r", "i"))
    return out


def compare_payloads(
    new: Mapping[str, Any], existing: Mapping[str, Any], ignore_keys: Iterable[str] = PAYLOAD_IGNORED_KEYS
) -> bool:
    """True when ``new`` is the same as or a subset of ``existing`` (Kowalski ``compare_dicts``).

    Keys in ``ignore_keys`` are skipped at the top level; nested dicts are compared recursively (with
    no ignored keys, as Kowalski does); list values must have every item present in the existing
    list; ``observation_type`` uses the SEDM expansion (the new set must be a subset of the existing
    one, so an existing "4-shot+IFU" covers a new "IFU").
    """
    if not isinstance(existing, Mapping):
        return False
    ignore = set(ignore_keys)
    for k, v in new.items():
        if k in ignore:
            continue
        if k not in existing:
            return False
        ev = existing[k]
        if isinstance(v, Mapping):
            if not isinstance(ev, Mapping) or not compare_payloads(v, ev, ()):
                return False
        elif isinstance(v, (list, tuple)):
            if not isinstance(ev, (list, tuple)) or not all(i in ev for i in v):
                return False
        elif k == "observation_type":
            if not _sedm_obs_set(new) <= _sedm_obs_set(existing):
                return False
        elif ev != v:
            return False
    return True


@dataclass(frozen=True)
class Plan:
    """What to do about one (source, allocation, payload).

    action: "post" (no equivalent request), "update" (raise the priority of ``request`` with a PUT of
    ``update_payload``, the full existing payload with the new priority), or "skip".
    request: the existing request the decision is about (None for "post").
    """

    action: Literal["post", "update", "skip"]
    reason: str
    request: dict | None = None
    update_payload: dict | None = None


def _req_id(r: Mapping[str, Any]) -> str:
    return f"request {r.get('id', '?')} ({r.get('status')!s})"


def plan_followup(
    existing: Sequence[Mapping[str, Any]],
    allocation_id: int,
    payload: Mapping[str, Any],
    now: datetime,
    priority_order: str = "asc",
    *,
    target_group_ids: Iterable[int] | None = None,
    pending_blocks: bool = True,
) -> Plan:
    """Decide post / update / skip, following Kowalski's auto_followup (KW 4.4, SP 3.8).

    ``existing``: the source's requests as listed by ``GET /api/followup_request`` (already filtered
    to the exact obj_id). Steps:

    1. Keep requests of ``allocation_id`` whose status contains (case-insensitively) ``submitted``,
       ``complete``, ``deleted`` or ``failed``; drop ``failed`` ones whose ``modified`` (else
       ``created_at``) is more than 12 h before ``now`` (timestamps parsed leniently, naive = UTC; an
       unparseable timestamp keeps the request, Kowalski's fail-safe).
       Addition (``pending_blocks=True``, more conservative than Kowalski): a ``pending submission``
       request modified within 12 h (or with an unparseable time) is also kept. Such a row exists
       while the server is still calling the facility (SP 3.1), e.g. right after our own POST timed
       out; posting again then would create a second SEDM entry. ``rejected`` and old pending rows
       never block (as in production).
    2. A kept request *matches* if the new payload is a subset of its payload ignoring priority,
       urgency, start/end dates, advanced and observation_choices (SEDM observation_type expansion).
       If ``target_group_ids`` is given (not None), its target groups must also overlap them (or
       both be empty), as in Kowalski; None skips that check.
    3. No match: "post". Otherwise take the least urgent match (Kowalski sorts by priority: lowest
       first for asc, highest first for desc): completed/deleted/failed (or pending) -> "skip";
       ``submitted`` and the new priority outranks it (asc: higher number) -> "update"; else "skip".
    """
    if priority_order not in ("asc", "desc"):
        raise ValueError(f"priority_order must be 'asc' or 'desc', got {priority_order!r}")
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    pkey = priority_key(payload)
    new_prio = payload.get(pkey)
    if not is_number(new_prio):
        raise ValueError(f"payload key {pkey!r}: {new_prio!r} is not a number")
    now_utc = to_utc_naive(now)
    tgroups = None if target_group_ids is None else set(_int_list("target_group_ids", target_group_ids))

    candidates: list[Mapping[str, Any]] = []
    for r in existing:
        if not isinstance(r, Mapping):
            continue
        try:
            if int(r.get("allocation_id")) != int(allocation_id):  # type: ignore[arg-type]
                continue
        except (TypeError, ValueError):
            continue
        kind = status_kind(r.get("status"))
        if kind in ("submitted", "complete", "deleted"):
            candidates.append(r)
        elif kind == "failed" or (kind == "pending" and pending_blocks):
            ts = parse_timestamp(r.get("modified")) or parse_timestamp(r.get("created_at"))
            if ts is None or now_utc - ts <= FAILED_RETRY_WINDOW:
                candidates.append(r)

    matches: list[Mapping[str, Any]] = []
    for r in candidates:
        rp = r.get("payload")
        if not isinstance(rp, Mapping) or not compare_payloads(payload, rp):
            continue
        if tgroups is not None:
            rg = {g.get("id") for g in (r.get("target_groups") or []) if isinstance(g, Mapping)}
            if not (tgroups & rg or (not tgroups and not rg)):
                continue
        matches.append(r)

    if not matches:
        n = len(candidates)
        why = "no equivalent follow-up request for this allocation"
        if n:
            why += f" ({n} other request(s) for this allocation have a different payload or groups)"
        return Plan("post", why)

    def sort_key(r: Mapping[str, Any]) -> float:
        p = (r.get("payload") or {}).get(pkey)
        if is_number(p):
            return float(p)
        # unknown priority sorts as least urgent
        return -math.inf if priority_order == "asc" else math.inf

    matches.sort(key=sort_key, reverse=(priority_order == "desc"))
    req = matches[0]
    kind = status_kind(req.get("status"))
    req_dict = dict(req)
    if kind == "complete":
        return Plan("skip", f"an equivalent {_req_id(req)} is already completed", req_dict)
    if kind == "deleted":
        return Plan("skip", f"an equivalent {_req_id(req)} was deleted; not re-triggering", req_dict)
    if kind == "failed":
        return Plan("skip", f"an equivalent {_req_id(req)} failed less than 12 h ago", req_dict)
    if kind == "pending":
        return Plan(
            "skip", f"an equivalent {_req_id(req)} is pending submission (less than 12 h old)", req_dict
        )
    # submitted
    old = (req.get("payload") or {}).get(pkey)
    if not is_number(old):
        return Plan("skip", f"an equivalent {_req_id(req)} exists but its {pkey} is unknown", req_dict)
    if priority_should_update(old, new_prio, priority_order):
        new_payload = {**dict(req.get("payload") or {}), pkey: new_prio}
        return Plan(
            "update",
            f"an equivalent {_req_id(req)} is submitted with {pkey} {old}; raising it to {new_prio}",
            req_dict,
            new_payload,
        )
    return Plan(
        "skip",
        f"an equivalent {_req_id(req)} is already submitted with {pkey} {old} (new {new_prio} does not outrank it)",
        req_dict,
    )
