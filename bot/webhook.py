"""The chat webhook's HTTP transport (a Slack-compatible incoming webhook), beside the other transports:
`POST {"text": ...}` to a secret URL that never appears in an error, a repr or a log; a webhook that
failed is not tried again for `DOWN_FOR_S` (in one process), so a down webhook never delays anything.
The `notify` action kind (`bot.actions.notify`) uses it."""

from __future__ import annotations

import time

import requests
from urllib3.exceptions import NewConnectionError

DOWN_FOR_S = 60.0  # after a failure, the webhook is not tried again for this long (in one process)


class WebhookError(Exception):
    """A failed webhook POST; `transient` as SkyPortalError's; `delivered` None when it may have gone out."""

    def __init__(self, message: str, *, transient: bool, delivered: bool | None = False, status: int | None = None):
        super().__init__(message)
        self.message, self.transient, self.delivered, self.status = message, transient, delivered, status


class Webhook:
    """POSTs `{"text": ...}` to a secret URL; errors never contain the URL."""

    def __init__(self, url: str, timeout_s: float = 5.0, session: requests.Session | None = None,
                 clock=time.monotonic):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must start with http:// or https://")
        self.__url, self.timeout_s = url, timeout_s
        self._session = session or requests.Session()
        self._clock, self._down_until = clock, 0.0

    def __repr__(self) -> str:
        return "Webhook(url=<secret>)"

    def post(self, text: str) -> int:
        if self._clock() < self._down_until:
            raise WebhookError("webhook down (failed less than a minute ago); not tried", transient=True)
        try:
            r = self._session.post(self.__url, json={"text": text}, timeout=self.timeout_s)
        except requests.ConnectTimeout:  # no connection was made: not delivered
            self._down_until = self._clock() + DOWN_FOR_S
            raise WebhookError(f"webhook unreachable (no connection in {self.timeout_s:g} s)", transient=True) from None
        except requests.Timeout:  # sent, no answer in time: it may have been delivered
            self._down_until = self._clock() + DOWN_FOR_S
            raise WebhookError(f"webhook timed out after {self.timeout_s:g} s", transient=True, delivered=None) from None
        except requests.RequestException as exc:
            self._down_until = self._clock() + DOWN_FOR_S
            if _connected(exc):  # e.g. the connection dropped after the request went out: it may have arrived
                raise WebhookError(f"webhook connection lost before its answer ({type(exc).__name__})",
                                   transient=True, delivered=None) from None
            raise WebhookError(f"webhook unreachable ({type(exc).__name__})", transient=True) from None  # refused, DNS
        status, body = r.status_code, (r.text or "")[:100]
        r.close()
        if status == 200:
            return status
        transient = status == 429 or status >= 500
        if transient:
            self._down_until = self._clock() + DOWN_FOR_S
        raise WebhookError(f"webhook answered HTTP {status}: {body}", transient=transient, status=status)

    def close(self) -> None:
        self._session.close()


def _connected(exc: requests.RequestException) -> bool:
    """Whether a failed POST had a connection (so its request may have been read): requests wraps urllib3's
    cause, NewConnectionError (refused, no route, DNS) when none was made, in a MaxRetryError."""
    if not isinstance(exc, requests.ConnectionError):
        return False  # e.g. an invalid URL or body: refused before sending
    cause = exc.args[0] if exc.args else None
    return not isinstance(getattr(cause, "reason", cause), NewConnectionError)
