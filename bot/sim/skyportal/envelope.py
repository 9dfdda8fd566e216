"""Base of the SkyPortal stand-in's handler classes: the simulator, its store, SkyPortal's response envelope and
the transaction that turns a failure into a 400."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from bot.sim.skyportal.errors import ApiError


class Handlers:
    """What every resource's handlers share (the store, the envelope); `api.SkyPortalApi` holds one of each."""

    def __init__(self, store):
        self.store = store

    def ok(self, data: Any = None) -> tuple[int, dict]:
        return 200, {"status": "success", "data": {} if data is None else data, "version": self.store.version}

    def error_body(self, message: str) -> dict:
        return {"status": "error", "message": message, "data": {}, "version": self.store.version}

    @contextmanager
    def _transaction(self, message: str, catch: type[Exception] = Exception) -> Iterator[None]:
        """BEGIN ... COMMIT; an exception of type `catch` rolls back and answers 400 "<message>: <exception>"."""
        st = self.store
        st.begin()
        try:
            yield
        except catch as e:
            st.rollback()
            raise ApiError(400, f"{message}: {e}") from None
        st.commit()
