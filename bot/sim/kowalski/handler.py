"""The stand-in's HTTP handler: faults first, then the routes of Kowalski's API (`GET /`, `POST /api/auth`,
`POST /api/queries`) with its status codes and messages."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from bson import json_util

from bot.sim.faults import HTML_ERROR
from bot.sim.httpd import send_answer
from bot.sim.kowalski.auth import check_login

log = logging.getLogger(__name__)

MAX_BODY = 1024**2  # aiohttp client_max_size in Kowalski
ROUTES = {"/": ("GET",), "/api/auth": ("POST",), "/api/queries": ("POST",)}


def _json(status: int, payload) -> tuple[int, bytes, str, dict]:
    return status, json_util.dumps(payload, json_options=json_util.RELAXED_JSON_OPTIONS).encode(), \
        "application/json; charset=utf-8", {}


def _error(status: int, message: str):
    return _json(status, {"status": "error", "message": message})


def _handler_error(status: int, message: str):
    """An error a Kowalski handler returns, as its error_middleware passes it on (middlewares.py:23-27 at
    51d0078): 200/400/409 as they are, any other status with its reason phrase as the message -- so the login
    handler's `401 "wrong credentials"` (handlers/user.py:561,569) reaches the client as `401 "Unauthorized"`."""
    return _error(status, message if status in (200, 400, 409) else _phrase(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _text(status: int, text: str):
    return status, text.encode(), "text/plain; charset=utf-8", {}


class Handler(BaseHTTPRequestHandler):
    """One request to the stand-in; `self.server.sim` is the KowalskiSim."""

    protocol_version = "HTTP/1.1"  # keep-alive, as penquins' session expects
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall
    server_version = "Python/aiohttp-standin"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _handle(self) -> None:
        sim = self.server.sim  # the KowalskiSim (server.py), which imports this module
        method, path = self.command, urlsplit(self.path).path
        sim._count(f"{method} {path}")
        body, too_big = self._read_body()
        sim._sleep(sim.faults.latency_s)
        fault = sim.faults.decide(method, path)
        hang_after = 0.0
        if fault is not None and fault.kind == "timeout":
            sim._sleep(fault.hang_s)
        elif fault is not None and fault.kind == "timeout_after":
            hang_after = fault.hang_s
        if fault is not None and fault.kind == "status":
            resp = _error(fault.status, _phrase(fault.status))
        elif fault is not None and fault.kind == "429":
            status, raw, ctype, _ = _error(429, "Too Many Requests")
            resp = status, raw, ctype, {"Retry-After": str(max(0, math.ceil(fault.retry_after_s)))}
        elif fault is not None and fault.kind == "html":
            resp = fault.status, HTML_ERROR.format(status=fault.status).encode(), "text/html", {}
        else:
            try:
                resp = self._dispatch(sim, method, path, body, too_big)
            except Exception as exc:  # never let the handler thread die without an answer
                log.exception("kowalski sim: unexpected error")
                resp = _error(500, f"{type(exc).__name__}: {exc}")
        sim._sleep(hang_after)
        self._send(*resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> tuple[bytes, bool]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length <= MAX_BODY:
            return self.rfile.read(length) if length else b"", False
        while length > 0:  # drain it so that the connection stays usable
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)
        return b"", True

    def _dispatch(self, sim, method: str, path: str, body: bytes, too_big: bool):
        token = None
        if path != "/api/auth":
            token = (self.headers.get("Authorization") or "").strip()
            if token.startswith("Bearer "):
                token = token[len("Bearer "):].strip()
            token = token or None
            if token is not None and not sim.check_token(token):
                return _error(400, "token is invalid")
        if path not in ROUTES:
            return _error(404, "Not Found")
        if method not in ROUTES[path]:
            return _text(405, "405: Method Not Allowed")
        if path != "/api/auth" and token is None:
            return _handler_error(401, "auth required")  # auth_required (middlewares.py:83-97)
        if too_big:
            return _text(413, f"Maximum request body size {MAX_BODY} exceeded")
        if path == "/":
            return _json(200, {"status": "success", "message": "greetings from Kowalski!"})
        try:
            data = json_util.loads(body.decode() or "null")
        except Exception as exc:
            return _error(400, f"{type(exc).__name__}: {exc}")
        if path == "/api/auth":
            user = check_login(sim.users, data if isinstance(data, dict) else {})
            if isinstance(user, tuple):
                return _handler_error(*user)
            return _json(200, {"status": "success", "token": sim.issue_token(user)})
        sim.ingest_due()
        try:
            result = sim.run_query(data, user=sim.token_user(token))
        except Exception as exc:
            return _error(400, f"{type(exc).__name__}: {exc}")
        payload = {"status": "success", "message": "Successfully executed query"}
        if result is not None:
            payload["data"] = result
        return _json(200, payload)

    def _send(self, status: int, raw: bytes, ctype: str, headers: dict) -> None:
        send_answer(self, status, raw, ctype, headers)
