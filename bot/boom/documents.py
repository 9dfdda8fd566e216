"""BOOM's ZTF documents -> the alerts and histories the scorer reads (pure; no I/O).

BOOM stores an alert differently from Kowalski (its `src/alert/ztf.rs`): `_id` is the candid and there is
no top-level `candid`; null fields are left out; `isdiffpos` is a boolean; the cutouts live apart (base64
strings from `GET /surveys/ztf/cutouts`, or arrays of byte values from `ZTF_alerts_cutouts`); the history
is one `ZTF_alerts_aux` document per object with detections (`prv_candidates`, the alerts' own candidates
included) and upper limits (`prv_nondetections`) in separate arrays, every programid and later points
mixed in. This module turns them back into the shape the scorer and the features read, so that the 25
features are computed from what the broker returns exactly as training defined them:

- `alert(doc, cutouts)`: `{objectId, candid, candidate, cutoutScience/Template/Difference: {stampData}}`
  with `isdiffpos` "t"/"f" again;
- `history(aux, alert_candidates, programids)`: every detection and non-detection of the allowed
  programids, the object's `ZTF_alerts` candidates first (BOOM de-duplicates aux points on jd alone, so
  two detections of one exposure survive only through the alerts themselves), de-duplicated as the
  Kowalski poller does (`bot.core.features.history_key`), in jd order. Later points are cut by the
  features (`history_until`), never here.
"""

from __future__ import annotations

import base64
from typing import Iterable, Mapping, Sequence

from bot.core.features import history_key

STAMPS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")


class BoomDocumentError(ValueError):
    """A BOOM document the adapter cannot read; str() says which and why."""


def _isdiffpos(value):
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def _ztf_point(entry: Mapping) -> dict:
    out = dict(entry)
    if "isdiffpos" in out:
        out["isdiffpos"] = _isdiffpos(out["isdiffpos"])
    return out


def stamp_bytes(value) -> bytes | None:
    """A stamp as BOOM serves it -> the gzipped FITS bytes: base64 text (the cutouts endpoint), a JSON array
    of byte values (`ZTF_alerts_cutouts` through `/queries/find`), or bytes; None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except ValueError:
            raise BoomDocumentError("a cutout is not valid base64") from None
    elif isinstance(value, list):
        try:
            data = bytes(value)
        except (TypeError, ValueError):
            raise BoomDocumentError("a cutout array holds values that are not bytes") from None
    else:
        raise BoomDocumentError(f"a cutout is a {type(value).__name__}, not base64 text or bytes")
    return data or None


def alert(doc: Mapping, cutouts: Mapping | None) -> dict:
    """One `ZTF_alerts` document (+ its cutouts record, or None) as the alert the scorer reads. A missing
    or unreadable stamp becomes None (the scorer marks the alert unscorable with the reason)."""
    try:
        candid = int(doc["_id"])
        object_id = str(doc["objectId"])
        candidate = _ztf_point(doc["candidate"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BoomDocumentError(f"ZTF_alerts document without a usable {exc}") from None
    candidate.setdefault("candid", candid)
    out = {"objectId": object_id, "candid": candid, "candidate": candidate}
    for key in STAMPS:
        try:
            data = stamp_bytes((cutouts or {}).get(key))
        except BoomDocumentError:
            data = None
        out[key] = {"stampData": data} if data else None
    for key in ("classifications", "properties", "created_at"):
        if key in doc:
            out[key] = doc[key]
    return out


def history(aux: Mapping | None, alert_candidates: Iterable[Mapping] = (),
            programids: Sequence[int] | None = (1, 2)) -> list[dict]:
    """The object's detections and non-detections of `programids` (None: all), see the module docstring."""
    allowed = None if programids is None else {int(p) for p in programids}
    aux = aux or {}
    entries = [*alert_candidates, *(aux.get("prv_candidates") or []), *(aux.get("prv_nondetections") or [])]
    merged: dict[tuple, dict] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("jd") is None:
            continue
        if allowed is not None and entry.get("programid") not in allowed:
            continue
        merged.setdefault(history_key(entry), _ztf_point(entry))
    return sorted(merged.values(), key=lambda d: (d.get("jd") or 0.0, d.get("fid") or 0))
