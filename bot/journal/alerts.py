"""The journal's alerts: one row per (candid, model_version), upserted; what the poller and the policies read."""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Mapping

from bot.journal.codec import _dumps, _float, _int, _loads


_ALERT_REQUIRED = ("candid", "objectId", "jd", "model_version", "status")  # and score, which may be None
_ALERT_OPTIONAL = ("magpsf", "peakmag_so_far", "age", "drb")

_UPSERT_ALERT = """
INSERT INTO alerts (candid, model_version, objectId, jd, score, status,
                    magpsf, peakmag_so_far, age, drb, extra, time, precision, source, broker_score, broker_model)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (candid, model_version) DO UPDATE SET
    score = excluded.score,
    precision = excluded.precision,
    status = excluded.status,
    magpsf = coalesce(excluded.magpsf, magpsf),
    peakmag_so_far = coalesce(excluded.peakmag_so_far, peakmag_so_far),
    age = coalesce(excluded.age, age),
    drb = coalesce(excluded.drb, drb),
    extra = coalesce(excluded.extra, extra),
    source = coalesce(excluded.source, source),
    broker_score = coalesce(excluded.broker_score, broker_score),
    broker_model = coalesce(excluded.broker_model, broker_model),
    updated = excluded.time
"""


class AlertsMixin:
    def record_alerts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Record alerts handled (upsert on (candid, model_version)); returns how many rows.

        The whole batch is validated first and written in one transaction: a bad row records nothing.
        """
        now = self._now()
        params = []
        for i, r in enumerate(rows):
            try:
                for name in _ALERT_REQUIRED:
                    if r[name] is None:
                        raise ValueError(f"{name} is None")
                params.append((
                    _int(r["candid"]), str(r["model_version"]), str(r["objectId"]), float(r["jd"]),
                    _float(r.get("score")), str(r["status"]),
                    *(_float(r.get(k)) for k in _ALERT_OPTIONAL),
                    _dumps(r.get("extra")), now, r.get("precision"), r.get("source"),
                    _float(r.get("broker_score")), r.get("broker_model"),
                ))
            except KeyError as exc:
                raise KeyError(f"alert row {i} lacks {exc.args[0]!r}") from None
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"alert row {i}: {exc}") from None
        if params:
            with self.transaction():
                self._conn.executemany(_UPSERT_ALERT, params)
        return len(params)

    def known_candids(self, candids: Iterable[Any]) -> set[int]:
        """Which of these candids have been recorded (under any model version)."""
        wanted = list({_int(c) for c in candids})
        found: set[int] = set()
        with self._snapshot():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self._conn.execute(
                    f"SELECT DISTINCT candid FROM alerts WHERE candid IN ({marks})", chunk))
        return found

    def alerts_for_object(self, object_id: str, model_version: str | None = None) -> list[dict]:
        """A source's recorded alerts in jd order (optionally only those of one model version)."""
        sql, params = "SELECT * FROM alerts WHERE objectId = ?", [object_id]
        if model_version is not None:
            sql += " AND model_version = ?"
            params.append(model_version)
        return [self._alert(r) for r in self._read(sql + " ORDER BY jd, candid, model_version", params)]

    @staticmethod
    def _alert(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["extra"] = _loads(d["extra"])
        return d
