"""The chat webhook's transport (bot/webhook.py) against real sockets on loopback: what a failure says about
whether the message may have been delivered (`WebhookError.delivered`), which `notify` uses to stay at
most once: refused and unresolvable -> not delivered; a connection lost after the request was read, or
no answer in time -> may have been delivered (None)."""

from __future__ import annotations

import socket
import threading

import pytest

from bot.sim.webhook import WebhookSim
from bot.webhook import Webhook, WebhookError


def _server(handle):
    """A one-connection TCP server on loopback running `handle(conn)`; returns (url, thread, requests read)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = []

    def run():
        conn, _ = srv.accept()
        with conn:
            got.append(handle(conn))
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return f"http://127.0.0.1:{srv.getsockname()[1]}/hook", t, got


def _read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += conn.recv(65536)
    return body


def test_delivered_is_200():
    with WebhookSim() as sim:
        assert Webhook(sim.url, 2.0).post("hello") == 200
        assert sim.texts == ["hello"]


def test_a_connection_lost_after_the_request_was_read_may_have_delivered_it():
    url, t, got = _server(_read_request)  # reads the whole POST, then closes without an answer
    with pytest.raises(WebhookError) as err:
        Webhook(url, 2.0).post("hello")
    t.join(5)
    assert got and b'"text": "hello"' in got[0]  # it did arrive
    assert err.value.delivered is None and err.value.transient and "connection lost" in err.value.message


def test_no_answer_in_time_may_have_delivered_it():
    url, t, got = _server(lambda conn: (_read_request(conn), threading.Event().wait(1.0))[0])
    with pytest.raises(WebhookError) as err:
        Webhook(url, 0.3).post("hello")
    t.join(5)
    assert err.value.delivered is None and "timed out" in err.value.message


def test_refused_or_unresolvable_was_not_delivered():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    for url in (closed, "http://no-such-host.invalid/hook"):
        with pytest.raises(WebhookError) as err:
            Webhook(url, 2.0).post("hello")
        assert err.value.delivered is False and "unreachable" in err.value.message and url not in str(err.value)


def test_a_failed_webhook_is_not_tried_again_for_a_while():
    now = [0.0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    hook = Webhook(closed, 2.0, clock=lambda: now[0])
    with pytest.raises(WebhookError):
        hook.post("a")
    with pytest.raises(WebhookError, match="not tried"):
        hook.post("b")
    now[0] = 61.0
    with pytest.raises(WebhookError, match="unreachable"):
        hook.post("c")
