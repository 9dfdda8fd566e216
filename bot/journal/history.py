"""Reading the journal back: alerts, decisions and actions of a window or a source, in time order."""

from __future__ import annotations

import sqlite3

from bot.journal.actions import _ACTION_SELECT


class HistoryMixin:
    _KINDS = ("alerts", "decisions", "actions")

    def history(self, object_id: str | None = None, since_jd: float | None = None,
                until_jd: float | None = None, kind: str = "all", limit: int | None = None) -> list[dict]:
        """Journal entries ordered by time (when written), for `btsbot journal`.

        Filters: object_id; since_jd <= jd < until_jd (an action's jd is its decision's);
        kind "all", "alerts", "decisions" or "actions". limit keeps the most recent `limit` entries
        (still returned oldest first). Every row has the same keys (None where not relevant).
        """
        if kind != "all" and kind not in self._KINDS:
            raise ValueError(f"kind must be 'all', 'alerts', 'decisions' or 'actions', not {kind!r}")
        kinds = self._KINDS if kind == "all" else (kind,)
        entries: list[dict] = []
        with self._snapshot():
            for k in kinds:
                alias = {"alerts": "", "decisions": "", "actions": "d."}[k]
                where, params = [], []
                if object_id is not None:
                    where.append(f"{alias}objectId = ?")
                    params.append(object_id)
                if since_jd is not None:
                    where.append(f"{alias}jd >= ?")
                    params.append(since_jd)
                if until_jd is not None:
                    where.append(f"{alias}jd < ?")
                    params.append(until_jd)
                base = {"alerts": "SELECT * FROM alerts", "decisions": "SELECT * FROM decisions",
                        "actions": _ACTION_SELECT}[k]
                sql = base + (" WHERE " + " AND ".join(where) if where else "")
                if limit is not None:  # alerts and decisions are written in id order (no index on time)
                    order = "a.time DESC, a.id DESC" if k == "actions" else "id DESC"
                    sql += f" ORDER BY {order} LIMIT {max(int(limit), 0)}"
                entries.extend(self._entry(k, r) for r in self._conn.execute(sql, params))
        rank = {k[:-1]: i for i, k in enumerate(self._KINDS)}
        entries.sort(key=lambda e: (e["time"], rank[e["kind"]], e["id"]))
        if limit is not None:
            entries = entries[-int(limit):] if int(limit) > 0 else []
        return entries

    def _entry(self, kind: str, row: sqlite3.Row) -> dict:
        e = dict.fromkeys(("kind", "id", "time", "objectId", "candid", "jd", "policy", "action", "key",
                           "outcome", "score", "model_version", "status", "request", "response",
                           "error", "evidence", "decision_id", "finished", "extra", "mode"))
        if kind == "alerts":
            e.update(self._alert(row))
        elif kind == "decisions":
            e.update(self._decision(row))
        else:
            e.update(self._action(row))
        e["kind"] = kind[:-1]  # "alert", "decision", "action"
        return e
