"""A local stand-in for Kowalski's HTTP API, for tests and demos (`btsbot sim kowalski`).

The real, unmodified penquins client talks to it exactly as to Kowalski (contract:
shared/reference/kowalski-api.md): `POST /api/auth`, `GET /` (ping) and `POST /api/queries`
(info/catalog_names, find, find_one, count_documents, estimated_document_count, aggregate).
Queries run on mongomock, so filter/projection/sort/pipeline semantics are Mongo's, not ours.

Alerts are ingested like Kowalski does: `ZTF_alerts` gets each alert without `prv_candidates`/`fp_hists`
(`_id` = candid, `coordinates` added), `ZTF_alerts_aux` gets the per-object union of `prv_candidates`
(null fields stripped, deduplicated on (jd, fid)). An alert becomes visible once the simulated clock
(`bot.sim.clock.SimClock`) reaches its `visible_at` (default `candidate.jd`); ingestion happens at the start
of each request and is never undone (moving the clock back does not hide ingested alerts).
"""

from __future__ import annotations

import argparse
import ast
import base64
import bisect
import hashlib
import hmac
import json
import logging
import math
import secrets
import sys
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import mongomock
from bson import json_util

from bot.alert_files import iter_alert_files
from bot.sim.clock import SimClock, parse_time
from bot.sim.faults import (
    HTML_ERROR,
    Faults,
    add_fault_arguments,
    faults_from_args,
    wait_for_stop_signal,
)

log = logging.getLogger(__name__)

ALERTS, AUX = "ZTF_alerts", "ZTF_alerts_aux"
MAX_BODY = 1024**2  # aiohttp client_max_size in Kowalski
QUERY_TYPES = ("cone_search", "count_documents", "estimated_document_count", "find", "find_one",
               "aggregate", "info", "near", "drop", "skymap")
SUPPORTED = ("count_documents", "estimated_document_count", "find", "find_one", "aggregate", "info")
FORBIDDEN_STAGES = ("$unionWith", "$out", "$merge")
ROUTES = {"/": ("GET",), "/api/auth": ("POST",), "/api/queries": ("POST",)}
PENQUINS_VERSIONS = ((2, 0, 0), (2, 4, 2))
# ICRS (J2000) -> galactic rotation matrix
_GAL = ((-0.0548755604162154, -0.8734370902348850, -0.4838350155487132),
        (0.4941094278755837, -0.4448296299600112, 0.7469822444972189),
        (-0.8676661490190047, -0.1980763734312015, 0.4559837761750669))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(payload: dict, secret: str) -> str:
    """An HS256 JWT (what Kowalski issues), made with the standard library."""
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def verify_jwt(token: str, secret: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    sig = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(_b64url(sig), parts[2])


def _coordinates(ra: float, dec: float) -> dict:
    """What Kowalski's alert_mongify adds (without the ecliptic coordinates)."""
    h = ra / 15.0
    hh, hm = int(h), int((h - int(h)) * 60)
    hs = ((h - hh) * 60 - hm) * 60
    a = abs(dec)
    dd, dm = int(a), int((a - int(a)) * 60)
    ds = ((a - dd) * 60 - dm) * 60
    r, d = math.radians(ra), math.radians(dec)
    v = (math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d))
    x, y, z = (sum(row[i] * v[i] for i in range(3)) for row in _GAL)
    return {
        "radec_str": [f"{hh:02d}:{hm:02d}:{hs:06.3f}", f"{'-' if dec < 0 else '+'}{dd:02d}:{dm:02d}:{ds:05.2f}"],
        "radec_geojson": {"type": "Point", "coordinates": [ra - 180.0, dec]},
        "l": math.degrees(math.atan2(y, x)) % 360.0,
        "b": math.degrees(math.asin(max(-1.0, min(1.0, z)))),
    }


def _parse_spec(value, what: str):
    """Kowalski accepts filter/projection as a dict or a Python-literal string."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except Exception as exc:
            raise ValueError(f"Unsupported {what} specification") from exc
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"Unsupported {what} specification")
    return value


def _max_time_ms(kwargs: dict) -> int:
    ms = kwargs.get("max_time_ms", 300000)
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 1:
        raise ValueError("max_time_ms must be int >= 1")
    return ms


class KowalskiSim:
    """The Kowalski stand-in: a mongomock database behind a loopback HTTP server (see module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 users: dict[str, str] | None = None, clock: SimClock | None = None,
                 faults: Faults | None = None) -> None:
        self.host, self.port = host, port
        self.users = dict(users) if users is not None else {"admin": "admin"}
        self.clock = clock if clock is not None else SimClock()
        self.faults = faults if faults is not None else Faults()
        self._secret = secrets.token_hex(32)
        self.token = token or self.issue_token(next(iter(self.users), "admin"))
        self.request_count = 0
        self.request_counts: dict[str, int] = {}  # "METHOD /path" -> n
        self.load_errors: list[tuple[str, str]] = []  # (path, why) of files that could not be read
        self.db = mongomock.MongoClient().kowalski
        for name in (ALERTS, AUX):
            self.db.create_collection(name)
        self._staged: list[tuple[float, int, dict]] = []  # sorted by (visible_at, seq)
        self._ingested: set[int] = set()  # candids in ZTF_alerts
        self._aux: dict[str, tuple[list, set]] = {}  # objectId -> (prv_candidates, their keys)
        self._seq = 0
        self._lock = threading.RLock()  # guards the database and the staging list
        self._count_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- tokens ------------------------------------------------------------------------------------
    def issue_token(self, username: str) -> str:
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        return make_jwt({"user_id": username, "created_at": created}, self._secret)

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(token, self.token) or verify_jwt(token, self._secret)

    # ---- loading and ingestion ---------------------------------------------------------------------
    def load_paths(self, paths) -> int:
        """Stage the alerts of avro files/directories; unreadable files are logged and skipped."""
        n = 0
        for af in iter_alert_files([str(p) for p in paths]):
            if af.error:
                log.warning("skipping %s: %s", af.path, af.error)
                self.load_errors.append((af.path, af.error))
                continue
            n += self.load_alerts(af.alerts)
        return n

    def load_alerts(self, alerts, visible_at=None) -> int:
        """Stage alert dicts (as fastavro reads them); each becomes visible at visible_at[i] or candidate.jd."""
        alerts = list(alerts)
        if visible_at is not None and len(visible_at) != len(alerts):
            raise ValueError("visible_at must have one jd per alert")
        with self._lock:
            for i, alert in enumerate(alerts):
                at = float(visible_at[i]) if visible_at is not None else float(alert["candidate"]["jd"])
                self._staged.append((at, self._seq, alert))
                self._seq += 1
            self._staged.sort(key=lambda t: (t[0], t[1]))
        return len(alerts)

    @property
    def staged_count(self) -> int:
        """Alerts loaded but not yet visible."""
        with self._lock:
            return len(self._staged)

    def ingest_due(self) -> int:
        """Move the alerts whose time has come into the collections; returns how many were ingested."""
        now = self.clock.now_jd()
        with self._lock:
            cut = bisect.bisect_right(self._staged, now, key=lambda t: t[0])
            due, self._staged = self._staged[:cut], self._staged[cut:]
            return self._ingest([alert for _, _, alert in due])

    def _ingest(self, alerts: list[dict]) -> int:
        docs, touched = [], set()
        for alert in alerts:
            if alert["candid"] in self._ingested:
                continue  # Kowalski skips candids it already has
            self._ingested.add(alert["candid"])
            doc = {k: v for k, v in alert.items() if k not in ("prv_candidates", "fp_hists")}
            doc["_id"] = alert["candid"]
            doc.setdefault("classifications", {})
            doc["coordinates"] = _coordinates(alert["candidate"]["ra"], alert["candidate"]["dec"])
            docs.append(doc)
            # as Kowalski's ingester: null fields stripped, then $addToSet -- only identical entries merge
            # (one exposure may hold two distinct detections of an object: same jd and fid, other candids)
            entries, seen = self._aux.setdefault(alert["objectId"], ([], set()))
            for p in alert.get("prv_candidates") or []:
                p = {k: v for k, v in p.items() if v is not None}
                key = tuple(sorted(p.items()))
                if key not in seen:
                    seen.add(key)
                    entries.append(p)
            touched.add(alert["objectId"])
        if docs:
            self.db[ALERTS].insert_many(docs)
        for oid in touched:  # one write per object, however many of its alerts came in
            self.db[AUX].replace_one({"_id": oid}, {"_id": oid, "cross_matches": {}, "prv_candidates": self._aux[oid][0]},
                                     upsert=True)
        return len(docs)

    # ---- queries -----------------------------------------------------------------------------------
    def run_query(self, body: dict):
        """Execute a /api/queries body; returns `data` (None: omit it). Raises on a bad query."""
        try:
            with self._lock:
                return self._run_query(body)
        except ValueError as exc:  # mongomock's word for what a real server calls an OperationFailure
            if "mix including and excluding" in str(exc):
                raise mongomock.OperationFailure(f"Cannot mix inclusion and exclusion in projection: {exc}") from exc
            raise

    def _run_query(self, body: dict):
        if not isinstance(body, dict):
            raise ValueError("query must be a JSON object")
        qt = body.get("query_type")
        if qt not in QUERY_TYPES:
            raise KeyError(f"query_type {qt} not in {QUERY_TYPES}")
        if qt not in SUPPORTED:
            raise NotImplementedError(f"query_type {qt} is not supported by the Kowalski simulator")
        q = body.get("query")
        if not isinstance(q, dict):
            raise ValueError("query must be a dict")
        kwargs = body.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError("kwargs must be a dict")
        ms = _max_time_ms(kwargs)
        if qt == "info":
            cmd = q.get("command")
            if cmd == "catalog_names":
                return sorted(self.db.list_collection_names(), reverse=True)
            if cmd == "index_info":
                return self.db[q["catalog"]].index_information()
            raise ValueError(f"command {cmd} not supported by the Kowalski simulator")
        catalog = q.get("catalog")
        if not isinstance(catalog, str) or not catalog:
            raise ValueError("catalog not specified")
        if catalog not in self.db.list_collection_names():  # do not create it as a side effect
            return {"find": [], "aggregate": [], "count_documents": 0,
                    "estimated_document_count": 0}.get(qt)
        coll = self.db[catalog]
        if qt == "estimated_document_count":
            return coll.estimated_document_count()
        if qt == "aggregate":
            pipeline = q.get("pipeline")
            if not isinstance(pipeline, list) or not pipeline:
                raise ValueError("pipeline must be a non-empty list")
            if any(isinstance(st, dict) and set(st) & set(FORBIDDEN_STAGES) for st in pipeline):
                raise ValueError(f"pipeline uses forbidden stages, must not contain {FORBIDDEN_STAGES}")
            return list(coll.aggregate(pipeline, allowDiskUse=kwargs.get("allowDiskUse", True), maxTimeMS=ms))
        filt = _parse_spec(q.get("filter"), "filter")
        if filt is None:
            raise ValueError("Unsupported filter specification")
        if qt == "count_documents":
            return coll.count_documents(filt)
        if qt == "find_one":
            return coll.find_one(filt)  # Kowalski ignores projection and sort here
        projection = _parse_spec(q.get("projection"), "projection")
        cursor = coll.find(filt, projection, max_time_ms=ms)
        sort = kwargs.get("sort")
        if sort:
            cursor = cursor.sort(list(sort.items()) if isinstance(sort, dict) else [tuple(s) for s in sort])
        if kwargs.get("skip"):
            cursor = cursor.skip(int(kwargs["skip"]))
        if kwargs.get("limit"):
            cursor = cursor.limit(int(kwargs["limit"]))
        return list(cursor)

    # ---- server ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns the base URL."""
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._server.sim = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"kowalski-sim:{self.port}", daemon=True)
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

    def __enter__(self) -> KowalskiSim:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self._count_lock:
            self.request_count = 0
            self.request_counts.clear()

    def _count(self, key: str) -> None:
        with self._count_lock:
            self.request_count += 1
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _json(status: int, payload) -> tuple[int, bytes, str, dict]:
    return status, json_util.dumps(payload, json_options=json_util.RELAXED_JSON_OPTIONS).encode(), \
        "application/json; charset=utf-8", {}


def _error(status: int, message: str):
    return _json(status, {"status": "error", "message": message})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _text(status: int, text: str):
    return status, text.encode(), "text/plain; charset=utf-8", {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as penquins' session expects
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stall
    server_version = "Python/aiohttp-standin"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _handle(self) -> None:
        sim: KowalskiSim = self.server.sim
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

    def _dispatch(self, sim: KowalskiSim, method: str, path: str, body: bytes, too_big: bool):
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
            return _error(401, "Unauthorized")
        if too_big:
            return _text(413, f"Maximum request body size {MAX_BODY} exceeded")
        if path == "/":
            return _json(200, {"status": "success", "message": "greetings from Kowalski!"})
        try:
            data = json_util.loads(body.decode() or "null")
        except Exception as exc:
            return _error(400, f"{type(exc).__name__}: {exc}")
        if path == "/api/auth":
            return self._auth(sim, data if isinstance(data, dict) else {})
        sim.ingest_due()
        try:
            result = sim.run_query(data)
        except Exception as exc:
            return _error(400, f"{type(exc).__name__}: {exc}")
        payload = {"status": "success", "message": "Successfully executed query"}
        if result is not None:
            payload["data"] = result
        return _json(200, payload)

    @staticmethod
    def _auth(sim: KowalskiSim, data: dict):
        for field in ("username", "password"):
            if not data.get(field):
                return _error(400, f"missing {field}")
        if "penquins.__version__" in data:
            version = data["penquins.__version__"]
            try:
                ok = PENQUINS_VERSIONS[0] <= tuple(int(x) for x in str(version).split(".")) <= PENQUINS_VERSIONS[1]
            except ValueError:
                ok = False
            if not ok:
                return _error(400, f"unsupported version of penquins: {version}")
        user, password = str(data["username"]), str(data["password"])
        if user not in sim.users or not hmac.compare_digest(sim.users[user], password):
            return _error(401, "wrong credentials")
        return _json(200, {"status": "success", "token": sim.issue_token(user)})

    def _send(self, status: int, raw: bytes, ctype: str, headers: dict) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True


# ---- CLI ---------------------------------------------------------------------------------------------
def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the `kowalski` subcommand (wired as `btsbot sim kowalski`)."""
    p = subparsers.add_parser(
        "kowalski",
        help="run a local Kowalski stand-in (test/demo tool, loopback only by default)",
        description="A local stand-in for Kowalski's HTTP API serving ZTF alert packets from avro files, "
                    "for tests and demos. It is a test/demo tool: it binds to loopback (127.0.0.1) by default, "
                    "keeps everything in memory and must not be exposed to a network.")
    p.add_argument("--alerts", nargs="+", required=True, metavar="PATH",
                   help="avro alert files or directories (searched recursively)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback)")
    p.add_argument("--port", type=int, default=4000, help="port (default: 4000, Kowalski's; 0 = any free port)")
    p.add_argument("--token", help="a token to accept (default: a generated one, printed when ready)")
    p.add_argument("--user", default="admin", help="username accepted by /api/auth (default: admin)")
    p.add_argument("--password", default="admin", help="password of --user (default: admin)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--start-jd", type=float, help="simulated start time as a JD (default: all alerts visible)")
    start.add_argument("--start", metavar="DATE", help="simulated start time as an ISO date/datetime (UTC)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated days per real day (default 1 = real time; 3600 = one hour per second)")
    add_fault_arguments(p)
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    start_jd = args.start_jd if args.start_jd is not None else (parse_time(args.start) if args.start else None)
    faults = faults_from_args(args)
    sim = KowalskiSim(host=args.host, port=args.port, token=args.token, users={args.user: args.password},
                      clock=SimClock(start_jd=start_jd, speed=args.speed), faults=faults)
    n = sim.load_paths(args.alerts)
    for path, why in sim.load_errors:
        print(f"kowalski sim: skipped {path}: {why}", file=sys.stderr)
    try:
        url = sim.start()
    except OSError as exc:
        print(f"kowalski sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"kowalski sim ready on {url} token={sim.token} alerts={n}", flush=True)
    try:
        wait_for_stop_signal()
    finally:
        sim.stop()
    return 0
