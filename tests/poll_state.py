"""An in-memory `PollState` for the poller's tests (the bot itself keeps its state in the journal)."""

from __future__ import annotations

from typing import Iterable


class MemoryPollState:
    """What the poller needs from the journal: the handled candids and the state entries."""

    def __init__(self) -> None:
        self.handled: set[int] = set()
        self.values: dict[str, str] = {}

    def known_candids(self, candids: Iterable[int]) -> set[int]:
        return {int(c) for c in candids if int(c) in self.handled}

    def get_state(self, key: str) -> str | None:
        return self.values.get(key)

    def set_state(self, key: str, value: str) -> None:
        self.values[key] = str(value)

    def mark_handled(self, candids: Iterable[int]) -> None:
        self.handled.update(int(c) for c in candids)
