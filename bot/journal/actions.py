"""The journal's actions and their at-most-once protocol: journaled pending before the request is sent,
finished after with its outcome; `mark_sending` records what is being sent just before it goes."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any, Mapping

from bot.journal.codec import _dumps, _loads
from bot.journal.records import ActionRecord
from bot.redaction import scrub, scrub_text as _scrub_text


_ACTION_SELECT = """
SELECT a.id, a.decision_id, a.action, a.key, a.status, a.outcome, a.request, a.response, a.error,
       a.attempts, a.time, a.finished, a.attempt, a.mode, d.policy, d.objectId, d.candid, d.jd
FROM actions a JOIN decisions d ON d.id = a.decision_id
"""


class ActionsMixin:
    def start_action(self, decision_id: int, action: str, request: Mapping[str, Any] | None,
                     key: str | None = None, *, mode: str | None = None) -> int:
        """Journal an action as "pending" BEFORE sending it; returns its id.

        Idempotent on (decision_id, action, key), key=None included: if that action exists, its
        id is returned and nothing changes (a finished action stays finished).
        """
        k = "" if key is None else str(key)
        with self.transaction():
            self._conn.execute(
                "INSERT INTO actions (decision_id, action, key, status, request, time, mode) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (decision_id, action, key) DO NOTHING",
                (decision_id, action, k, _dumps(scrub(request)), self._now(), mode or self.mode or "live"))
            return self._conn.execute(
                "SELECT id FROM actions WHERE decision_id = ? AND action = ? AND key = ?",
                (decision_id, action, k)).fetchone()[0]

    def finish_action(self, action_id: int, outcome: str, response: Mapping[str, Any] | None = None,
                      error: str | None = None) -> None:
        """Record an action's outcome AFTER it was sent (or skipped, or failed)."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET status = 'done', outcome = ?, response = ?, error = ?, finished = ? "
                "WHERE id = ?",
                (outcome, _dumps(scrub(response)), None if error is None else _scrub_text(str(error)),
                 self._now(), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no action {action_id}")

    def note_attempt(self, action_id: int, error: str) -> None:
        """An attempt that failed transiently: the action stays pending (resumed later), attempts + 1."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET attempts = attempts + 1, error = ? WHERE id = ? AND status = 'pending'",
                (_scrub_text(str(error)), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no pending action {action_id}")

    def mark_sending(self, action_id: int, attempt: Mapping[str, Any]) -> None:
        """Journal what is about to be sent, just BEFORE sending it (`attempt`, with the time): after a
        crash between the send and `finish_action`, the next run finds the mark and knows it may have
        gone out (a webhook cannot be read back; a follow-up request can be recognised in the listing)."""
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE actions SET attempt = ? WHERE id = ? AND status = 'pending'",
                (_dumps(scrub({**attempt, "at": self._now()})), action_id))
            if cur.rowcount != 1:
                raise KeyError(f"no pending action {action_id}")

    def clear_sending(self, action_id: int) -> None:
        """The attempt marked by `mark_sending` certainly did not go out (refused before delivery)."""
        with self.transaction():
            self._conn.execute("UPDATE actions SET attempt = NULL WHERE id = ?", (action_id,))

    def unfinished_actions(self, mode: str | None = None) -> list[ActionRecord]:
        """Actions journaled as pending but never finished (in flight when the bot stopped), of `mode`
        (default: the journal's mode; a live bot never runs what a dry-run planned; None: all)."""
        mode = mode or self.mode
        if mode is None:
            rows = self._read(_ACTION_SELECT + " WHERE a.status = 'pending' ORDER BY a.id")
        else:
            rows = self._read(_ACTION_SELECT + " WHERE a.status = 'pending' AND (a.mode = ? OR a.mode IS NULL) "
                              "ORDER BY a.id", (mode,))
        return [self._action(r) for r in rows]

    def action(self, action_id: int) -> ActionRecord | None:
        rows = self._read(_ACTION_SELECT + " WHERE a.id = ?", (action_id,))
        return self._action(rows[0]) if rows else None

    def actions_for_object(self, object_id: str, action: str, *, pending: bool = False) -> list[ActionRecord]:
        """The actions of kind `action` of every decision about `object_id` (only the pending ones if asked)."""
        where = " WHERE a.action = ? AND d.objectId = ?" + (" AND a.status = 'pending'" if pending else "")
        return [self._action(r) for r in self._read(_ACTION_SELECT + where + " ORDER BY a.id", (action, object_id))]

    def actions_for(self, decision_id: int) -> list[ActionRecord]:
        return [self._action(r) for r in self._read(_ACTION_SELECT + " WHERE a.decision_id = ? ORDER BY a.id",
                                                    (decision_id,))]

    @staticmethod
    def _action(row: sqlite3.Row) -> ActionRecord:
        d = dict(row)
        d["key"] = d["key"] or None
        d["request"], d["response"], d["attempt"] = _loads(d["request"]), _loads(d["response"]), _loads(d["attempt"])
        return ActionRecord.of(d)

    def finished_actions(self, action: str, outcome: str, mode: str, since: datetime, until: datetime) -> list[ActionRecord]:
        """The `action` rows of `mode` that finished with `outcome` in [since, until) (their `finished` time)."""
        iso = [t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z") for t in (since, until)]
        rows = self._read(_ACTION_SELECT + " WHERE a.action = ? AND a.outcome = ? AND a.mode = ? AND a.finished >= ? "
                          "AND a.finished < ? ORDER BY a.finished", (action, outcome, mode, *iso))
        return [self._action(r) for r in rows]
