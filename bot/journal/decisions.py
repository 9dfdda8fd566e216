"""The journal's decisions: one row per (policy, objectId), with the mode of the run that made it."""

from __future__ import annotations

import io
import sqlite3
from typing import Any, Mapping

import numpy as np

from bot.journal.codec import _dumps, _float, _int, _loads
from bot.journal.records import DecisionRecord
from bot.redaction import scrub


class DecisionsMixin:
    def record_decision(self, policy: str, object_id: str, candid: Any, jd: float | None,
                        evidence: Mapping[str, Any] | None = None, *, mode: str | None = None) -> tuple[int, bool]:
        """Record that `policy` fired for `object_id`; once per (policy, objectId) and mode.

        Returns (decision_id, created); a repeated call returns the existing id with created=False
        and leaves the first decision untouched. A live decision for a source that only a dry-run
        decided takes that decision over (shadow -> live): the row becomes live with the new alert and
        evidence, and the dry-run's actions are kept under keys prefixed "dry-run:" so that the live
        actions are planned afresh.
        """
        mode = mode or self.mode or "live"
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO decisions (policy, objectId, candid, jd, evidence, time, mode) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (policy, objectId) DO NOTHING",
                (policy, object_id, None if candid is None else _int(candid), _float(jd),
                 _dumps(scrub(evidence)), self._now(), mode))
            created = cur.rowcount == 1
            did, old_mode = self._conn.execute("SELECT id, mode FROM decisions WHERE policy = ? AND objectId = ?",
                                               (policy, object_id)).fetchone()
            if not created and mode == "live" and old_mode == "dry-run":
                self._conn.execute("UPDATE decisions SET mode = 'live', candid = ?, jd = ?, evidence = ?, time = ? "
                                   "WHERE id = ?", (None if candid is None else _int(candid), _float(jd),
                                                    _dumps(scrub(evidence)), self._now(), did))
                self._conn.execute("UPDATE actions SET key = 'dry-run:' || key WHERE decision_id = ? AND "
                                   "(mode = 'dry-run' OR mode IS NULL)", (did,))
                created = True
        return did, created

    def decided(self, policy: str, object_id: str, mode: str | None = None) -> bool:
        """Whether `policy` already decided `object_id` for a bot in `mode`: a live bot never counts a
        dry-run decision as done (it acts on the source at its next alert)."""
        d = self.get_decision(policy, object_id)
        if d is None:
            return False
        return not ((mode or self.mode) == "live" and d.mode == "dry-run")

    def dry_run_decisions(self) -> list[DecisionRecord]:
        """The decisions only a dry-run made (no live decision took them over), oldest alert first."""
        rows = self._read("SELECT * FROM decisions WHERE mode = 'dry-run' ORDER BY jd, id")
        return [self._decision(r) for r in rows]

    def owe_annotations(self, object_ids) -> None:
        """Remember sources whose annotation must be planned (a chunk touched them; idempotent)."""
        with self.transaction():
            self._conn.executemany("INSERT OR IGNORE INTO annotations_owed VALUES (?, ?)",
                                   [(str(oid), self._now()) for oid in object_ids])

    def owed_annotations(self) -> list[str]:
        """The sources owed an annotation, by objectId."""
        return [r[0] for r in self._read("SELECT objectId FROM annotations_owed ORDER BY objectId")]

    def annotations_planned(self, object_ids) -> None:
        """These sources' annotations are planned: no longer owed."""
        with self.transaction():
            self._conn.executemany("DELETE FROM annotations_owed WHERE objectId = ?", [(str(o),) for o in object_ids])

    def decided_any(self, object_id: str) -> bool:
        """Whether any policy ever decided `object_id`."""
        return bool(self._read("SELECT 1 FROM decisions WHERE objectId = ? LIMIT 1", (object_id,)))

    def mode_summary(self) -> dict:
        """Decisions and actions per mode, for the start banner: {"decisions": {mode: n}, "actions": {mode: n},
        "dry_run_only_sources": n} (sources decided only by dry-run, which a live bot acts on at their next alert)."""
        with self._snapshot():
            dec = dict(self._conn.execute("SELECT coalesce(mode, 'unknown'), count(*) FROM decisions GROUP BY 1"))
            act = dict(self._conn.execute("SELECT coalesce(mode, 'unknown'), count(*) FROM actions GROUP BY 1"))
            only = self._conn.execute("SELECT count(DISTINCT objectId) FROM decisions WHERE mode = 'dry-run'").fetchone()[0]
        return {"decisions": dec, "actions": act, "dry_run_only_sources": only}

    def get_decision(self, policy: str, object_id: str) -> DecisionRecord | None:
        rows = self._read("SELECT * FROM decisions WHERE policy = ? AND objectId = ?", (policy, object_id))
        return self._decision(rows[0]) if rows else None

    def get_decision_by_id(self, decision_id: int) -> DecisionRecord | None:
        rows = self._read("SELECT * FROM decisions WHERE id = ?", (decision_id,))
        return self._decision(rows[0]) if rows else None

    @staticmethod
    def _decision(row: sqlite3.Row) -> DecisionRecord:
        return DecisionRecord.of({**dict(row), "evidence": _loads(row["evidence"])})

    def record_evidence(self, candid: int, object_id: str, thumbs: Mapping[str, Any], lightcurve: Mapping) -> None:
        """What a reviewer sees at the alert where a policy fired (`bot.core.evidence`), once per candid."""
        def blob(img):
            if img is None:
                return None
            buf = io.BytesIO()
            np.save(buf, np.asarray(img, dtype=np.uint8), allow_pickle=False)
            return buf.getvalue()

        with self.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO evidence (candid, objectId, science, template, difference, lightcurve, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_int(candid), str(object_id), blob(thumbs.get("cutoutScience")), blob(thumbs.get("cutoutTemplate")),
                 blob(thumbs.get("cutoutDifference")), _dumps(lightcurve), self._now()))

    def evidence(self, candid: int) -> dict | None:
        """{"cutoutScience"|"cutoutTemplate"|"cutoutDifference": uint8 array or None, "lightcurve": dict}."""
        rows = self._read("SELECT * FROM evidence WHERE candid = ?", (_int(candid),))
        if not rows:
            return None
        r = rows[0]

        def image(raw):
            return None if raw is None else np.load(io.BytesIO(raw), allow_pickle=False)

        return {"cutoutScience": image(r["science"]), "cutoutTemplate": image(r["template"]),
                "cutoutDifference": image(r["difference"]), "lightcurve": _loads(r["lightcurve"]) or {}}
