"""A recording Slack-compatible incoming webhook on loopback, for tests of the `notify` action.

    with WebhookSim() as hook:      # listens on 127.0.0.1, a random port
        hook.url                    # the secret URL to put in BTSBOT_SLACK_WEBHOOK (has a random path)
        hook.messages               # the JSON bodies received, in order ({"text": ...})
        hook.fail_status = 503      # answer every POST with this status (Slack: 500/503 when down)
        hook.hang_s = 3.0           # accept, record, then answer only after this many seconds

It answers 200 "ok" (as Slack does) to `POST <its path>` with a JSON body holding a string `text`,
400 "invalid_payload" to a body without one, 404 "no_service" to another path.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        sim: WebhookSim = self.server.sim
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != sim.path:
            return self._answer(404, "no_service")
        if sim.fail_status:
            sim.refused += 1
            return self._answer(sim.fail_status, "service_unavailable")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return self._answer(400, "invalid_payload")
        with sim.lock:
            sim.messages.append(body)
        if sim.hang_s:
            time.sleep(sim.hang_s)
        self._answer(200, "ok")

    def do_GET(self):  # noqa: N802
        self._answer(405, "invalid_method")


class WebhookSim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self.path = f"/services/T000/B000/{secrets.token_hex(12)}"
        self.messages: list[dict] = []
        self.fail_status: int | None = None
        self.hang_s = 0.0
        self.refused = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def texts(self) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.messages]

    def start(self) -> str:
        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._server.sim = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "WebhookSim":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
