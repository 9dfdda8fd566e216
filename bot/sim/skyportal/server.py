"""The SkyPortal stand-in's HTTP server: `SkyPortalSim` (lifecycle, test hooks, request pipeline with faults)
and the request handler that feeds it.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.sim.faults import HTML_ERROR, Fault, Faults
from bot.sim.httpd import StandInServer
from bot.sim.skyportal.api import SkyPortalApi
from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.facility import FACILITY_MODES
from bot.sim.skyportal.schema import dumps
from bot.sim.skyportal.store import Store


def _clean(v: Any) -> Any:
    """NaN/inf -> null, as SkyPortal's JSON encoder does."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: headers and body are written separately; with Nagle the body waits for the client's
    # delayed ACK of the headers (~40 ms per request on a keep-alive connection).
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "nginx (skyportal-sim)"

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _serve(self) -> None:
        method = self.command
        sim: SkyPortalSim = self.server.sim
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        status, headers, body, hang_after = sim._respond(method, path, query, self.headers, raw, self.path)
        if hang_after:
            sim._stopping.wait(hang_after)
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class SkyPortalSim:
    """A local SkyPortal/Fritz on loopback. See the package docstring (bot/sim/skyportal/__init__.py)."""

    def __init__(self, seed=None, db_path: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None, verbose: bool = False):
        self.store = Store(seed, db_path)
        self.faults = faults if faults is not None else Faults()
        self.host, self.port, self.verbose = host, port, verbose
        self.requests: list[dict] = []
        self.auto_followups: list[dict] = []  # requests posted by DefaultFollowupRequest matching
        self.api = SkyPortalApi(self.store, self.auto_followups)
        self._req_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: StandInServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------
    @property
    def token(self) -> str:
        return self.store.bot_token

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("SkyPortalSim not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = StandInServer((self.host, self.port), _Handler)
        self._server.sim = self
        self._server.verbose = self.verbose
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="skyportal-sim", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "SkyPortalSim":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- introspection and test hooks -------------------------------------------------------------
    def writes(self) -> list[dict]:
        with self._req_lock:
            return [r for r in self.requests if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]

    def clear_requests(self) -> None:
        with self._req_lock:
            self.requests.clear()

    def set_obj_flags(self, obj_id: str, classified: bool | None = None, spectra: bool | None = None,
                      tns_classified: bool | None = None, tns_reported_at: datetime | str | None = None) -> None:
        """Mark an obj (existing or not yet created) as classified / with spectra / TNS-classified; with
        tns_reported_at (an existing obj only), give it a TNS name and discovery date for not_if_tns_reported."""
        st = self.store
        with st.lock:
            st.set_flags(obj_id, classified=classified, spectra=spectra, tns_classified=tns_classified)
            if tns_reported_at is not None:
                when = tns_reported_at.isoformat() if isinstance(tns_reported_at, datetime) else str(tns_reported_at)
                o = st.obj(obj_id)
                name = o["tns_name"] if o is not None and o["tns_name"] else f"AT sim-{obj_id}"
                st.set_tns_info(obj_id, name, {"discoverydate": when})

    def add_objs(self, positions: dict) -> None:
        """Objs that exist but are saved to no group ({obj_id: (ra, dec)}), as a Fritz filter's candidates."""
        with self.store.lock:
            for obj_id, (ra, dec) in positions.items():
                if self.store.obj(obj_id) is None:
                    self.store.insert_obj(obj_id, float(ra), float(dec), {})

    def set_facility_behaviour(self, allocation_id: int, mode: str, obj_id: str | None = None) -> None:
        """How the simulated SEDM queue answers on this allocation (for one obj if obj_id is given):
        "ok" (submitted), "reject" (HTTP 200, request_status "rejected: ..."), "fail" (HTTP 400 and a
        committed "failed to submit: ..." row; PUT/DELETE fail with 400 and change nothing), "active"
        (submissions accepted, PUT/DELETE refused: "Data is being taken.")."""
        if mode not in FACILITY_MODES:
            raise ValueError(f"mode must be one of {FACILITY_MODES}")
        st = self.store
        with st.lock:
            if st.allocation(allocation_id) is None:
                raise KeyError(f"no allocation {allocation_id}")
            if obj_id is None:
                st.x("UPDATE allocations SET facility = ? WHERE id = ?", (mode, allocation_id))
            else:
                st.x("INSERT OR REPLACE INTO facility_rules (allocation_id, obj_id, mode) VALUES (?,?,?)",
                     (allocation_id, obj_id, mode))

    def add_default_followup_request(self, allocation_id: int, payload: dict, source_filter: dict | None = None,
                                     **extra) -> None:
        """Configure a DefaultFollowupRequest (also possible in the seed, `default_followup_requests`):
        saving a *new* Source row matching source_filter ({"group_id", "name" (regex on the obj id),
        "origin"}) makes the server post this request itself. extra: requester_id, validity_days,
        constraints (the not_if_* dict), target_group_ids, comment."""
        with self.store.lock:
            self.store.x("INSERT INTO default_followups (data) VALUES (?)",
                         (dumps({"allocation_id": allocation_id, "payload": payload,
                                 "source_filter": source_filter or {}, **extra}),))

    def set_followup_status(self, request_id: int, status: str) -> None:
        """What the SEDM listener (POST /api/facility) does: set a request's status verbatim."""
        with self.store.lock:
            self.store.set_followup_status(request_id, status)

    # ---- request pipeline -------------------------------------------------------------------------
    def _record(self, method, path, query, raw, status, fault) -> None:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = raw.decode("utf-8", "replace")
        with self._req_lock:
            self.requests.append({"method": method, "path": path, "query": dict(query), "body": body,
                                  "status": status, "fault": fault})

    def _respond(self, method: str, path: str, query: dict, headers, raw: bytes, uri: str | None = None):
        """(status, headers, body bytes, seconds to hang before answering)."""
        if self.faults.latency_s > 0:
            self._stopping.wait(self.faults.latency_s)
        fault: Fault | None = self.faults.decide(method, path)
        kind = fault.kind if fault else None
        if fault is not None and fault.kind in ("status", "429", "html"):
            if fault.kind == "status" and fault.status not in (502, 504):
                msg = ("Database is temporarily unavailable; please retry shortly." if fault.status == 503
                       else f"HTTP {fault.status}: Internal Server Error" if fault.status == 500
                       else f"HTTP {fault.status}: simulated error")
                status, hdrs, body = fault.status, {"Content-Type": "application/json"}, \
                    json.dumps(self.api.error_body(msg)).encode()
            else:
                status = fault.status
                hdrs = {"Content-Type": "text/html"}
                if fault.kind == "429":
                    hdrs["Retry-After"] = f"{fault.retry_after_s:g}"
                body = HTML_ERROR.format(status=status).encode()
            self._record(method, path, query, raw, status, kind)
            return status, hdrs, body, 0.0
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.hang_s)
        ctx = Ctx(self.store, method, path, query, headers, raw, uri)
        with self.store.lock:
            try:
                status, payload = self.api.dispatch(ctx)
            except ApiError as e:
                status, payload = e.status, (None if method == "HEAD" and e.status == 404
                                             else self.api.error_body(e.message))
            except Exception as e:  # an unguarded code path: tornado's 500 with the envelope
                self.store.rollback()
                status, payload = 500, self.api.error_body(str(e) or repr(e))
            finally:
                self.store.rollback()  # never leave a transaction open between requests
        if payload is None:
            body, hdrs = b"", {}
        else:
            body, hdrs = json.dumps(_clean(payload)).encode(), {"Content-Type": "application/json"}
        self._record(method, path, query, raw, status, kind)
        hang = fault.hang_s if fault is not None and fault.kind == "timeout_after" else 0.0
        return status, hdrs, body, hang
