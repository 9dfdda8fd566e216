"""The HTTP server of the stand-ins: a ThreadingHTTPServer whose close also drops the connections it holds.

`http.server` keeps serving a client's keep-alive connection after `shutdown()` + `server_close()`
(only the listening socket closes), so a stopped stand-in would go on answering a client that
reuses its connection (requests/penquins do). A real server that goes down refuses and resets
them; so does this one.
"""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args, **kwargs):
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServedInThread:
    """The lifecycle the Kowalski and BOOM stand-ins share: a `StandInServer` in a daemon thread on
    (`host`, `port`), its `handler` class given `server.sim = self`; `_stopping` wakes hanging faults."""

    handler: type
    name = "stand-in"
    host: str
    port: int
    _server: StandInServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns the base URL."""
        self._stopping.clear()
        self._server = StandInServer((self.host, self.port), self.handler)
        self._server.sim = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()  # wakes up requests hanging on a timeout fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def send_answer(handler, status: int, raw: bytes, ctype: str, headers: dict) -> None:
    """Write one answer on a BaseHTTPRequestHandler; a client that gave up (its timeout) closes the connection."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def serve_until_stopped(sim: ServedInThread, ready: str) -> int:
    """`btsbot sim …`: start `sim`, print `ready` (with `{url}` filled in), serve until SIGTERM/SIGINT; 1 when
    the address cannot be bound."""
    import sys

    from bot.sim.faults import wait_for_stop_signal

    try:
        url = sim.start()
    except OSError as exc:
        print(f"{sim.name.replace('-', ' ')}: cannot listen on {sim.host}:{sim.port}: {exc}", file=sys.stderr)
        return 1
    print(ready.format(url=url), flush=True)
    try:
        wait_for_stop_signal()
    finally:
        sim.stop()
    return 0
