"""The stand-in's alert database: alerts staged until the simulated clock reaches them, then ingested as
Kowalski does (`ZTF_alerts` without `prv_candidates`/`fp_hists`, `_id` = candid, `coordinates` added;
`ZTF_alerts_aux` the per-object union of `prv_candidates`, null fields stripped)."""

from __future__ import annotations

import bisect
import logging
import threading

import mongomock

from bot.alert_files import iter_alert_files
from bot.sim.broker_scores import kowalski_classifications
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
        self._aux: dict[str, tuple[list, set]] = {}  # objectId -> (prv_candidates, their keys)
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
            doc["_id"] = alert["candid"]
            doc.setdefault("classifications", {})
            doc["classifications"].update(scored.get(int(alert["candid"]), {}))
            doc["coordinates"] = coordinates(alert["candidate"]["ra"], alert["candidate"]["dec"])
            docs.append(doc)
            # as Kowalski's ingester: null fields stripped, then $addToSet -- only identical entries merge
            # (one exposure may hold two distinct detections of an object: same jd and fid, other candids)
            entries, seen = self._aux.setdefault(alert["objectId"], ([], set()))
            for p in alert.get("prv_candidates") or []:
                p = {k: v for k, v in p.items() if v is not None}
                key = tuple(sorted(p.items()))
                if key not in seen:
                    seen.add(key)
                    entries.append(p)
            touched.add(alert["objectId"])
        if docs:
            self.db[ALERTS].insert_many(docs)
        for oid in touched:  # one write per object, however many of its alerts came in
            self.db[AUX].replace_one({"_id": oid}, {"_id": oid, "cross_matches": {}, "prv_candidates": self._aux[oid][0]},
                                     upsert=True)
        return len(docs)

    def run_query(self, body: dict):
        """A /api/queries body (see queries.run_query), under the database lock."""
        with self._lock:
            return run_query(self.db, body)
