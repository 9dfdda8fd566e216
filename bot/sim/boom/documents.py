"""ZTF alert packets turned into the documents BOOM stores (BOOM `src/alert/ztf.rs`, `process_alert`).

- `ZTF_alerts`: one document per alert, `_id` = candid, no top-level `candid`; the candidate without its
  null fields and without the fields BOOM does not keep (`DROPPED`); `isdiffpos` a boolean; `band` from
  `fid`; `coordinates.radec_geojson` (longitude = ra - 180); `created_at` (JD of ingestion).
- `ZTF_alerts_aux`: one document per object, `_id` = objectId: `prv_candidates` (detections, the
  alert's own candidate with its `drb` appended), `prv_nondetections` (upper limits, split out),
  `fp_hists` (forced photometry without the -99999 fill), each sorted by jd and de-duplicated on jd
  alone (the first occurrence kept), merged over every alert of the object: later points and every
  programid are in it.
- `ZTF_alerts_cutouts`: `_id` = candid and the three stamps as bytes (the gzipped FITS of the packet).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

ALERTS, AUX, CUTOUTS = "ZTF_alerts", "ZTF_alerts_aux", "ZTF_alerts_cutouts"
STAMPS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
BANDS = {1: "g", 2: "r", 3: "i"}
# packet candidate fields BOOM's Candidate struct does not keep
DROPPED = frozenset({
    "rbversion", "drbversion", "jdendhist", "tooflag", "rfid", "tblid", "xpos", "ypos", "magdiff", "magfromlim",
    "sumrat", "nmatches", "objectidps1", "objectidps2", "objectidps3", "pdiffimfilename", "clrmed", "clrrms",
    "jdstartref", "jdendref", "nframesref", "magapbig", "sigmagapbig", "aimagerat", "bimagerat", "zpclrcov",
})  # fmt: skip


def is_positive(value) -> bool:
    """BOOM's isdiffpos: "t", "T", "true", "1" (or True) -> True, anything else False."""
    return value is True or str(value) in ("t", "T", "true", "1")


def _finite(value) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def _point(entry: Mapping) -> dict:
    """A history point as BOOM stores it: nulls omitted, isdiffpos boolean, band added."""
    out = {k: v for k, v in entry.items() if v is not None and k not in DROPPED}
    if "isdiffpos" in out:
        out["isdiffpos"] = is_positive(out["isdiffpos"])
    if out.get("fid") in BANDS:
        out["band"] = BANDS[out["fid"]]
    return out


def alert_document(packet: Mapping, created_at: float | None = None) -> dict:
    """The `ZTF_alerts` document of one packet."""
    cand = _point(packet["candidate"])
    ra, dec = float(cand["ra"]), float(cand["dec"])
    doc = {"_id": int(packet["candid"]), "objectId": str(packet["objectId"]), "candidate": cand,
           "coordinates": {"radec_geojson": {"type": "Point", "coordinates": [ra - 180.0, dec]}}}
    doc["created_at"] = doc["updated_at"] = float(created_at if created_at is not None else cand["jd"])
    return doc


def cutout_document(packet: Mapping) -> dict:
    """The `ZTF_alerts_cutouts` document of one packet (stamps as bytes; absent stamps left out)."""
    doc: dict = {"_id": int(packet["candid"])}
    for key in STAMPS:
        stamp = packet.get(key)
        data = stamp.get("stampData") if isinstance(stamp, Mapping) else None
        if isinstance(data, (bytes, bytearray)) and data:
            doc[key] = bytes(data)
    return doc


def _merge_on_jd(old: list[dict], new: Iterable[dict]) -> list[dict]:
    """BOOM's rule for every aux series: sorted by jd, de-duplicated on jd alone, first occurrence kept."""
    seen = {p["jd"] for p in old}
    out = list(old)
    for p in new:
        if not _finite(p.get("jd")) or p["jd"] in seen:
            continue
        seen.add(p["jd"])
        out.append(p)
    return sorted(out, key=lambda p: p["jd"])


def _fp_point(fp: Mapping) -> dict | None:
    """A forced-photometry point as BOOM keeps it; None for what BOOM drops (no flux error, no zero point,
    an unknown filter)."""
    if not _finite(fp.get("forcediffimfluxunc")) or not _finite(fp.get("magzpsci")) or fp.get("fid") not in BANDS:
        return None
    out = _point(fp)
    if out.get("forcediffimflux") == -99999:
        del out["forcediffimflux"]
    return out


def aux_document(packet: Mapping, old: Mapping | None = None) -> dict:
    """The `ZTF_alerts_aux` document of the packet's object after ingesting it (merged over `old`)."""
    prv = [p for p in packet.get("prv_candidates") or [] if isinstance(p, Mapping)]
    detections = [_point(p) for p in prv if p.get("magpsf") is not None]
    limits = [_point(p) for p in prv if p.get("magpsf") is None]
    own = _point(packet["candidate"])  # the alert's own candidate joins the detections (with its drb)
    if own["jd"] not in {p["jd"] for p in detections}:
        detections.append(own)
    fps = [f for f in (_fp_point(fp) for fp in packet.get("fp_hists") or [] if isinstance(fp, Mapping)) if f]
    old = old or {}
    return {
        "_id": str(packet["objectId"]),
        "prv_candidates": _merge_on_jd(list(old.get("prv_candidates", [])), _merge_on_jd([], detections)),
        "prv_nondetections": _merge_on_jd(list(old.get("prv_nondetections", [])), _merge_on_jd([], limits)),
        "fp_hists": _merge_on_jd(list(old.get("fp_hists", [])), _merge_on_jd([], fps)),
    }


def ingest(packets: Iterable[Mapping]) -> dict[str, dict]:
    """The three collections for a set of packets, ingested in (jd, candid) order: name -> {_id: doc}."""
    alerts, aux, cutouts = {}, {}, {}
    for packet in sorted(packets, key=lambda p: (p["candidate"]["jd"], int(p["candid"]))):
        doc = alert_document(packet)
        alerts[doc["_id"]] = doc
        cutouts[doc["_id"]] = cutout_document(packet)
        aux[doc["objectId"]] = aux_document(packet, aux.get(doc["objectId"]))
    return {ALERTS: alerts, AUX: aux, CUTOUTS: cutouts}
