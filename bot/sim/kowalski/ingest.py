"""The stand-in's alert database: alerts staged until the simulated clock reaches them, then ingested as
Kowalski does, alert by alert (kowalski/alert_brokers/alert_broker_ztf.py `process_alerts`): `ZTF_alerts` gets
the alert without `prv_candidates`/`fp_hists`, with a Mongo ObjectId `_id` and `coordinates`; `ZTF_alerts_aux`
gets one document per object, `{_id: objectId, cross_matches, prv_candidates[, fp_hists]}` (aux_docs.py)."""

from __future__ import annotations

import bisect
import logging
import threading

import mongomock
from bson import ObjectId

from bot.alert_files import iter_alert_files
from bot.sim.broker_scores import kowalski_classifications
from bot.sim.kowalski import aux_docs as A
from bot.sim.kowalski.coordinates import coordinates
from bot.sim.kowalski.queries import run_query

log = logging.getLogger(__name__)

ALERTS, AUX = "ZTF_alerts", "ZTF_alerts_aux"


class AlertDatabase:
    """A mongomock `kowalski` database with staging by visibility time; thread-safe."""

    def __init__(self, broker_model=None) -> None:
        """`broker_model`: a BTSbot backend's `predict`; given, alerts get `classifications.bts` as Kowalski
        computes it (`bot.sim.broker_scores`), else `classifications` stays empty (no model loaded)."""
        self.broker_model = broker_model
        self.db = mongomock.MongoClient().kowalski
        for name in (ALERTS, AUX):
            self.db.create_collection(name)
        self.load_errors: list[tuple[str, str]] = []  # (path, why) of files that could not be read
        self._staged: list[tuple[float, int, dict]] = []  # sorted by (visible_at, seq)
        self._ingested: set[int] = set()  # candids in ZTF_alerts
        self._aux: dict[str, _Aux] = {}  # objectId -> its ZTF_alerts_aux document as last written
        self._seq = 0
        self._lock = threading.RLock()  # guards the database and the staging list

    def load_paths(self, paths) -> int:
        """Stage the alerts of avro files/directories; unreadable files are logged and skipped."""
        n = 0
        for af in iter_alert_files([str(p) for p in paths]):
            if af.error:
                log.warning("skipping %s: %s", af.path, af.error)
                self.load_errors.append((af.path, af.error))
                continue
            n += self.load_alerts(af.alerts)
        return n

    def load_alerts(self, alerts, visible_at=None) -> int:
        """Stage alert dicts (as fastavro reads them); each becomes visible at visible_at[i] or candidate.jd."""
        alerts = list(alerts)
        if visible_at is not None and len(visible_at) != len(alerts):
            raise ValueError("visible_at must have one jd per alert")
        with self._lock:
            for i, alert in enumerate(alerts):
                at = float(visible_at[i]) if visible_at is not None else float(alert["candidate"]["jd"])
                self._staged.append((at, self._seq, alert))
                self._seq += 1
            self._staged.sort(key=lambda t: (t[0], t[1]))
        return len(alerts)

    @property
    def staged_count(self) -> int:
        """Alerts loaded but not yet visible."""
        with self._lock:
            return len(self._staged)

    def ingest_due(self, now_jd: float) -> int:
        """Move the alerts visible at `now_jd` into the collections; returns how many were ingested."""
        with self._lock:
            cut = bisect.bisect_right(self._staged, now_jd, key=lambda t: t[0])
            due, self._staged = self._staged[:cut], self._staged[cut:]
            return self._ingest([alert for _, _, alert in due])

    def _ingest(self, alerts: list[dict]) -> int:
        docs, touched = [], set()
        scored = kowalski_classifications(alerts, self.broker_model) if self.broker_model and alerts else {}
        for alert in alerts:
            if alert["candid"] in self._ingested:
                continue  # Kowalski skips candids it already has
            self._ingested.add(alert["candid"])
            doc = {k: v for k, v in alert.items() if k not in ("prv_candidates", "fp_hists")}
            doc["_id"] = ObjectId()  # Kowalski lets Mongo create it (alert_broker.py:579)
            doc.setdefault("classifications", {})
            doc["classifications"].update(scored.get(int(alert["candid"]), {}))
            doc["coordinates"] = coordinates(alert["candidate"]["ra"], alert["candidate"]["dec"])
            docs.append(doc)
            if self._update_aux(alert):
                touched.add(alert["objectId"])
        if docs:
            self.db[ALERTS].insert_many(docs)
        for oid in touched:  # one write per object, however many of its alerts came in
            self.db[AUX].replace_one({"_id": oid}, self._aux[oid].document(oid), upsert=True)
        return len(docs)

    def _update_aux(self, alert: dict) -> bool:
        """The aux step of Kowalski's ingestion for one alert, in order (see aux_docs.py); False if Kowalski
        would have failed before writing aux (e.g. a forced-photometry entry without magzpsci)."""
        try:
            prv = A.clean_prv_candidates(alert.get("prv_candidates"))
            fps = A.format_fp_hists(alert, A.clean_fp_hists(alert.get("fp_hists")))
            aux = self._aux.get(alert["objectId"])
            keep = A.keeps_fp_hists(alert["candidate"]) if aux is None else None
        except (KeyError, TypeError) as exc:
            log.warning("kowalski sim: no aux update for %s %s (Kowalski's ingester would fail too): %r",
                        alert.get("objectId"), alert.get("candid"), exc)
            return False
        if aux is None:  # the object's first alert: insert (alert_broker_ztf.py:137-176)
            self._aux[alert["objectId"]] = _Aux(prv, fps if keep else None)
        else:  # later alerts: $addToSet the prv_candidates; fp_hists only if stored (alert_broker_ztf.py:178-215)
            aux.add_to_set(prv)
            if aux.fp_hists is not None:
                aux.fp_hists = A.merge_fp_hists(aux.fp_hists, fps)
        return True

    def run_query(self, body: dict, admin: bool = True):
        """A /api/queries body (see queries.run_query), under the database lock."""
        with self._lock:
            return run_query(self.db, body, admin)


class _Aux:
    """One object's `ZTF_alerts_aux` document, kept in memory so that an update is not a linear scan."""

    def __init__(self, prv_candidates: list[dict], fp_hists: list[dict] | None) -> None:
        self.cross_matches = A.cross_matches()  # computed once, at the first alert
        self.prv_candidates = list(prv_candidates)  # inserted as is: no dedupe within the first alert
        self._seen = {_key(p) for p in self.prv_candidates}
        self.fp_hists = fp_hists  # None: no fp_hists field

    def add_to_set(self, entries: list[dict]) -> None:
        """`$addToSet: {prv_candidates: {$each: entries}}`: only entries equal to a stored one are dropped (one
        exposure may hold two distinct detections of an object: same jd and fid, other candids)."""
        for p in entries:
            key = _key(p)
            if key not in self._seen:
                self._seen.add(key)
                self.prv_candidates.append(p)

    def document(self, oid: str) -> dict:
        doc = {"_id": oid, "cross_matches": self.cross_matches, "prv_candidates": self.prv_candidates}
        if self.fp_hists is not None:
            doc["fp_hists"] = self.fp_hists
        return doc


def _key(entry: dict) -> tuple:
    return tuple(sorted(entry.items()))
