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
