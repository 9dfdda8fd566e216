"""Errors raised by the SkyPortal client."""

from __future__ import annotations

from bot.retry import is_transient_status


class SkyPortalError(Exception):
    """A non-success answer from SkyPortal (after any retries), or a transport failure.

    status: the HTTP status, or None when no response was received (timeout, connection error).
    transient: True for timeouts/connection errors and the statuses of `bot.retry.TRANSIENT_HTTP_STATUSES`
    (worth trying again later; the transport retries exactly these); False otherwise (a permanent
    refusal: fix the request, the token or the configuration).
    The message never contains the API token. `says(fragment)` reads the server's own words, before the
    token was masked out of them (a short token can occur inside ordinary words: "Annotation already
    exi<redacted>s"), so that the client recognises an answer whatever the token; that text never leaves
    the process (not in str(), not pickled).
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        method: str,
        path: str,
        *,
        transient: bool | None = None,
        data: object = None,
        raw: str | None = None,
        headline: bool = False,
    ) -> None:
        self.status = status
        self.message = message
        self._raw = raw
        self.method = method
        self.path = path
        if transient is None:
            transient = is_transient_status(status)
        self.transient = bool(transient)
        self.data = data
        self.headline = headline  # the message alone is the line for people (it names the server and key)
        super().__init__(str(self))

    def says(self, fragment: str) -> bool:
        """Whether the server's message (unmasked) contains `fragment`, ignoring case."""
        return fragment.lower() in (self._raw if self._raw is not None else self.message).lower()

    def __str__(self) -> str:
        if getattr(self, "headline", False):
            return self.message
        where = f"{self.method} {self.path}"
        code = f"HTTP {self.status}" if self.status is not None else "no response"
        kind = "transient" if self.transient else "permanent"
        return f"{where}: {code} ({kind}): {self.message}"

    def __reduce__(self):  # keep picklable with keyword-only args
        return (
            _rebuild,
            (self.status, self.message, self.method, self.path, self.transient, self.data, self.headline),
        )


def _rebuild(status, message, method, path, transient, data, headline=False):
    return SkyPortalError(status, message, method, path, transient=transient, data=data, headline=headline)
