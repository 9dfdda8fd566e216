"""The BOOM poller: the same window, cursor and chunks as the Kowalski poller (`bot.kowalski.poller`),
with BOOM's queries (docs/contracts.md, BOOM):

1. the scan pages through `ZTF_alerts` keyset-paginated on `_id` (= candid, indexed), bounded by the `_id`
   range that holds the jd window (`candid_floor`) with the exact `candidate.jd` window in the same filter,
   and BOOM's pre-filter (`isdiffpos` is a boolean there);
2. per chunk, the documents by `_id` and their cutouts: where the deployment keeps them in MongoDB, one
   `/queries/pipeline` per chunk joins `ZTF_alerts_cutouts` to the documents (`$lookup`); else a find of the
   documents and one `GET /surveys/ztf/cutouts` per alert. Then the histories: the objects'
   `ZTF_alerts` candidates and their `ZTF_alerts_aux` detections and upper limits, read back by
   `bot.boom.documents` into the shape the scorer reads. The queries of a step run concurrently
   (`BoomClient.concurrently`, `boom.max_concurrent` at a time) under the client's rate limit.

The cursor is the same journal entry as Kowalski's: candids are ZTF's in both, so a journal moved from one
broker to the other goes on where it stopped, and `known_candids` keeps any alert from being handled twice.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator, Mapping

from bot.boom import documents as B
from bot.boom.client import BoomError
from bot.kowalski.poller import Poller, _chunks, _has_stamp
from bot.kowalski.queries import HISTORY_ALERT_ONLY_FIELDS, HISTORY_FIELDS, and_filters

ZTF_NID0 = 2457754.5  # 2017-01-01T00:00 UTC: a ZTF candid / 1e15 is within 1e-5 day of jd - ZTF_NID0
ID_MARGIN_DAYS = 1e-3  # margin of the _id bound around the jd window (the relation holds to 1e-5 day)
log = logging.getLogger(__name__)

ALERTS, AUX, CUTOUTS = "ZTF_alerts", "ZTF_alerts_aux", "ZTF_alerts_cutouts"


def candid_floor(jd: float) -> int:
    """The smallest ZTF candid of an exposure taken at `jd` or later."""
    return math.floor((jd - ZTF_NID0) * 1e6) * 10**9


JOINED = "_cutouts"  # where the $lookup puts an alert's ZTF_alerts_cutouts record


def with_cutouts(candids: list[int]) -> list[dict]:
    """The aggregation that reads the alerts `candids` with their cutouts joined in (one request, not two)."""
    return [{"$match": {"_id": {"$in": [int(c) for c in candids]}}},
            {"$lookup": {"from": CUTOUTS, "localField": "_id", "foreignField": "_id", "as": JOINED}},
            {"$limit": len(candids)}]


class BoomPoller(Poller):
    """Polls BOOM for new alerts (see the module docstring); the client is a connected `BoomClient`."""

    source = "boom"
    _join = True  # documents and cutouts in one $lookup pipeline; False once BOOM refused it (a find each)

    def _build_cuts(self, prefilter: Mapping[str, Any] | None) -> dict:
        base: dict = {"candidate.isdiffpos": True}
        if self.programids:
            base["candidate.programid"] = {"$in": list(self.programids)}
        if self.mag_max is not None:
            base["candidate.magpsf"] = {"$lt": float(self.mag_max)}
        if prefilter is not None and not isinstance(prefilter, Mapping):
            raise TypeError("extra pre-filter cuts must be a MongoDB filter (a mapping)")
        return and_filters(base, prefilter)

    def _pages(self, jd_from: float, jd_to: float) -> Iterator[list[dict]]:
        last, high = candid_floor(jd_from - ID_MARGIN_DAYS) - 1, candid_floor(jd_to + ID_MARGIN_DAYS)
        window = {"candidate.jd": {"$gte": float(jd_from), "$lt": float(jd_to)}}
        while True:
            filt = and_filters({"_id": {"$gt": last, "$lt": high}}, window, self.cuts)
            docs = self.client.find(ALERTS, filt, {"objectId": 1, "candidate.jd": 1}, sort={"_id": 1},
                                    limit=self.page_size)
            page = sorted(({"candid": int(d["_id"]), "objectId": d.get("objectId"),
                            "candidate": {"jd": float(d["candidate"]["jd"])}} for d in docs),
                          key=lambda d: (d["candidate"]["jd"], d["candid"]))
            if docs:
                last = max(int(d["_id"]) for d in docs)
            yield page
            if len(docs) < self.page_size:
                return

    def _fetch_alerts(self, keys: list[dict]) -> tuple[list[dict], list[int]]:
        if not keys:
            return [], []
        candids = [int(k["candid"]) for k in keys]
        docs: dict[int, dict] = {}
        stamps: dict[int, dict] = {}
        chunks = _chunks(candids, self.cutout_batch)
        if self.client.has_cutout_catalog and self._join:  # one query per chunk: documents joined with cutouts
            try:
                results = self.client.concurrently(
                    [lambda c=c: self.client.pipeline(ALERTS, with_cutouts(c)) for c in chunks])
            except BoomError as exc:
                if exc.transient:
                    raise
                log.warning("BOOM refused the $lookup of %s (%s): reading the cutouts with a find of their own",
                            CUTOUTS, exc)
                self._join = False
                return self._fetch_alerts(keys)
            for r in results:
                for d in r:
                    joined = d.pop(JOINED, None) or [None]
                    docs[int(d["_id"])], stamps[int(d["_id"])] = d, joined[0]
        else:
            find = self.client.find
            calls = [lambda c=c: find(ALERTS, {"_id": {"$in": list(c)}}, limit=len(c)) for c in chunks]
            if self.client.has_cutout_catalog:
                calls += [lambda c=c: find(CUTOUTS, {"_id": {"$in": list(c)}}, limit=len(c)) for c in chunks]
            results = self.client.concurrently(calls)
            docs = {int(d["_id"]): d for r in results[:len(chunks)] for d in r}
            if self.client.has_cutout_catalog:
                stamps = {int(c["_id"]): c for r in results[len(chunks):] for c in r}
            else:  # one GET /surveys/ztf/cutouts per new alert that passed the pre-filter (rate-limited)
                found = [c for c in candids if c in docs]
                stamps = dict(zip(found, self.client.concurrently([lambda c=c: self.client.cutouts(c) for c in found])))
        alerts, missing = [], []
        for key in keys:
            candid = int(key["candid"])
            if candid in docs:
                alert = B.alert(docs[candid], stamps.get(candid))
            else:  # vanished between the scan and the fetch: kept as its key, without cutouts
                alert = {**key, **{k: None for k in B.STAMPS}}
            if not all(_has_stamp(alert.get(k)) for k in B.STAMPS):
                missing.append(candid)
            alerts.append(alert)
        return alerts, missing

    def _candidates(self, chunk: list[str], fields: dict) -> dict[str, list[dict]]:
        """The objects' `ZTF_alerts` candidates (allowed programids), keyset-paged on `_id`."""
        cands: dict[str, list[dict]] = {oid: [] for oid in chunk}
        last = -1
        while True:
            filt = {"objectId": {"$in": list(chunk)}, "_id": {"$gt": last},
                    "candidate.programid": {"$in": list(self.programids)}}
            docs = self.client.find(ALERTS, filt, {"objectId": 1, **fields}, sort={"_id": 1}, limit=self.page_size)
            for d in docs:
                cands[str(d["objectId"])].append({**d["candidate"], "candid": int(d["_id"])})
            if len(docs) < self.page_size:
                return cands
            last = int(docs[-1]["_id"])

    def _histories(self, alerts: list[dict]) -> dict[str, list[dict]]:
        oids = list(dict.fromkeys(str(a["objectId"]) for a in alerts))
        fields = {f"candidate.{f}": 1 for f in HISTORY_FIELDS + HISTORY_ALERT_ONLY_FIELDS}
        chunks = _chunks(oids, self.history_batch)
        calls = []  # per chunk: its candidates and its ZTF_alerts_aux documents; concurrent
        for chunk in chunks:
            calls.append(lambda c=chunk: self._candidates(c, fields))
            calls.append(lambda c=chunk: self.client.find(
                AUX, {"_id": {"$in": list(c)}}, {"prv_candidates": 1, "prv_nondetections": 1}, limit=len(c)))
        results = self.client.concurrently(calls)
        histories: dict[str, list[dict]] = {}
        for chunk, cands, aux_docs in zip(chunks, results[0::2], results[1::2]):
            aux = {str(d["_id"]): d for d in aux_docs}
            for oid in chunk:
                histories[oid] = B.history(aux.get(oid), cands[oid], self.programids)
        return histories
