"""Operational events: the operator is told when the bot fails, is held, spends its budget, leaves actions
waiting, or goes quiet -- on the chat webhook of `notify:` (opt-in), once per episode, and again when it
clears ("recovered").

Events (`notify.events`):
- `failed_cycles`: `health.max_failed_cycles` cycles in a row failed;
- `guard`: the runaway guard holds every Fritz write (`bot/actions/guard.py`);
- `budget`: a follow-up was held by `max_per_night` this Palomar night;
- `pending`: an action has been pending for more than `notify.pending_hours`;
- `quiet`: inside `schedule.hours_utc`, no alert polled for `health.quiet_hours` hours.

`OpsMonitor.observe(conditions)` is the pure part: which episodes start and which clear, with the state of
the open episodes kept in the journal (`ops.episodes`), so a restart neither repeats a message nor forgets
an open episode. The same conditions are metrics (`btsbot_ops_event{event}`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Mapping

log = logging.getLogger(__name__)

EVENTS = ("failed_cycles", "guard", "budget", "pending", "quiet")
STATE_KEY = "ops.episodes"


@dataclass(frozen=True)
class Message:
    event: str
    started: bool  # True: the episode starts; False: recovered
    text: str


def conditions(*, failed_in_a_row: int, max_failed: int, guard_tripped: bool, over_budget_tonight: int,
               oldest_pending: datetime | None, last_alert: datetime | None, now: datetime,
               pending_hours: float, quiet_hours: float | None, in_hours: bool) -> dict[str, str | None]:
    """event -> what is wrong (a phrase), or None when it is not (pure)."""
    quiet = None
    if quiet_hours is not None and in_hours and last_alert is not None and now - last_alert > timedelta(hours=quiet_hours):
        quiet = f"no alert polled since {last_alert:%Y-%m-%d %H:%M} UTC ({(now - last_alert).total_seconds() / 3600:.1f} h)"
    pending = None
    if oldest_pending is not None and now - oldest_pending > timedelta(hours=pending_hours):
        pending = f"an action has been pending since {oldest_pending:%Y-%m-%d %H:%M} UTC"
    return {
        "failed_cycles": f"{failed_in_a_row} cycles in a row failed" if failed_in_a_row >= max_failed else None,
        "guard": "the runaway guard holds every Fritz write (btsbot release-guard)" if guard_tripped else None,
        "budget": f"{over_budget_tonight} follow-up(s) held by max_per_night tonight" if over_budget_tonight else None,
        "pending": pending,
        "quiet": quiet,
    }


class OpsMonitor:
    """Turns the conditions of each cycle into one message per episode (see the module docstring)."""

    def __init__(self, events: list[str], send: Callable[[str], object] | None, state, prefix: str = "btsbot"):
        self.events, self.send, self.state, self.prefix = list(events), send, state, prefix

    def _open(self) -> dict[str, str]:
        raw = self.state.get_state(STATE_KEY)
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            value = {}
        return value if isinstance(value, dict) else {}

    def observe(self, now_conditions: Mapping[str, str | None]) -> list[Message]:
        """The messages this cycle owes (and sends them, when a webhook is configured)."""
        open_ = self._open()
        out = []
        for event in self.events:
            what = now_conditions.get(event)
            if what and event not in open_:
                open_[event] = what
                out.append(Message(event, True, f"{self.prefix}: {event.replace('_', ' ')}: {what}"))
            elif not what and event in open_:
                was = open_.pop(event)
                out.append(Message(event, False, f"{self.prefix}: recovered: {event.replace('_', ' ')} ({was})"))
        self.state.set_state(STATE_KEY, json.dumps(open_))
        for m in out:
            (log.warning if m.started else log.info)("%s", m.text)
            if self.send is not None:
                try:
                    self.send(m.text)
                except Exception as exc:  # a down webhook never stops the bot; the log line stays
                    log.warning("operational message not delivered (%s): %s", type(exc).__name__, m.text)
        return out
