"""`BoomSim`: a loopback stand-in for BOOM's main API (its `src/api/**`), as docs/contracts.md describes it.

Routes: `GET /` (public greeting), `POST /auth` (form-encoded username/password -> a bearer token with
`expires_in`; JSON is refused with 415; a wrong password is 401 `{"error": "invalid_client", ...}`), and
behind the auth middleware (`Authorization: Bearer <token>`, its three text/plain 401s) `GET /catalogs`,
`POST /queries/find`, `POST /queries/pipeline` (the stages as they are) and `POST /queries/count` (`catalog_name` at the top level, `filter` required, `sort`
an object, `limit`, `skip`, `max_time_ms`), and `GET /surveys/ztf/cutouts?candid=N` (the three stamps as
padded base64). Envelopes: `{"message", "data"}` with no `status`; an unknown or protected catalog is 404;
what Mongo rejects is 500 JSON; a body that does not parse is 400 text/plain. Documents are stored as BOOM
stores them (`bot.sim.boom.documents`) in mongomock, so filter, projection and sort are Mongo's. Faults
(`bot.sim.faults`) answer as BOOM's proxy does: text/plain, 429 with Retry-After.

Not here: `/filters/test`, cone searches, Babamul's routes (the bot calls none of them).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import mongomock
import numpy as np
import orjson

from bot.sim.boom import documents as D
from bot.sim.broker_scores import boom_classifications
from bot.sim.faults import Faults
from bot.sim.httpd import ServedInThread, send_answer

log = logging.getLogger(__name__)

MAX_JSON = 2 * 1024**2  # actix's JSON body limit
PUBLIC = ("/", "/auth", "/docs")
PROTECTED = {"filters", "babamul_users", "users"}
TOKEN_LIFETIME_S = 604800


def _bson_as_serde(value):
    """What orjson cannot write itself, as serde_json writes BSON: bytes (Binary subtype 0) -> an array of
    byte values (written by orjson from a uint8 array, fast enough for a night of cutouts)."""
    if isinstance(value, (bytes, bytearray)):
        return np.frombuffer(bytes(value), dtype=np.uint8)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json(status: int, payload) -> tuple[int, bytes, str, dict]:
    """A JSON answer as BOOM's serde_json writes it: compact, bytes as arrays of byte values, NaN/inf null."""
    raw = orjson.dumps(payload, default=_bson_as_serde, option=orjson.OPT_SERIALIZE_NUMPY)
    return status, raw, "application/json", {}


def _equality_lookup(stage: dict) -> bool:
    spec = stage.get("$lookup")
    return (isinstance(spec, dict) and {"from", "localField", "foreignField", "as"} <= set(spec)
            and "pipeline" not in spec and all(isinstance(spec[k], str) for k in ("from", "localField", "foreignField", "as")))


def _dotted(doc: dict, path: str):
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _text(status: int, text: str) -> tuple[int, bytes, str, dict]:
    return status, text.encode(), "text/plain; charset=utf-8", {}


class BoomSim(ServedInThread):
    """The BOOM stand-in (see the module docstring)."""

    name = "boom-sim"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, users: dict[str, str] | None = None,
                 faults: Faults | None = None, token_lifetime_s: float = TOKEN_LIFETIME_S,
                 cutout_catalog: bool = True, clock=None, broker_model=None) -> None:
        """cutout_catalog False: the cutouts live outside MongoDB (BOOM's S3 storage), so `ZTF_alerts_cutouts`
        is not a catalog; the cutouts endpoint serves them either way. clock (a `bot.sim.clock.SimClock`):
        alerts loaded with a `visible_at` are ingested once it reaches that time, at the start of a request.
        broker_model (a BTSbot backend's `predict`): alerts get `classifications.btsbot` as BOOM's enrichment
        computes it (`bot.sim.broker_scores`); without one they have no `classifications` (not enriched)."""
        self.host, self.port = host, port
        self.broker_model = broker_model
        self.users = dict(users) if users is not None else {"admin": "admin"}
        self.faults = faults if faults is not None else Faults()
        self.token_lifetime_s = float(token_lifetime_s)
        self.clock = clock
        self._staged: list[tuple[float, int, dict]] = []  # (visible_at, seq, packet), sorted
        self.hidden = set(PROTECTED) | (set() if cutout_catalog else {D.CUTOUTS})
        self.db = mongomock.MongoClient().boom
        for name in (D.ALERTS, D.AUX, D.CUTOUTS):
            self.db.create_collection(name)
        self.request_counts: dict[str, int] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry (unix s)
        self._lock = threading.RLock()
        self._stopping = threading.Event()

    # ---- data --------------------------------------------------------------------------------------
    def load_alerts(self, packets, visible_at=None) -> int:
        """Ingest alert packets (as fastavro reads them) into the three collections, as BOOM does; with
        `visible_at` (one JD per packet, and a clock), each is staged until the clock reaches its time."""
        packets = list(packets)
        if visible_at is not None:
            if self.clock is None or len(visible_at) != len(packets):
                raise ValueError("visible_at needs a clock and one jd per packet")
            with self._lock:
                self._staged += [(float(t), len(self._staged) + i, p) for i, (t, p) in enumerate(zip(visible_at, packets))]
                self._staged.sort(key=lambda t: (t[0], t[1]))
            return len(packets)
        return self._ingest(packets)

    def ingest_due(self) -> int:
        """Ingest the staged packets whose time has come on the clock."""
        if self.clock is None or not self._staged:
            return 0
        now = self.clock.now_jd()
        with self._lock:
            due = [p for t, _, p in self._staged if t <= now]
            self._staged = [s for s in self._staged if s[0] > now]
        return self._ingest(due) if due else 0

    def _ingest(self, packets: list) -> int:
        with self._lock:
            old = {d["_id"]: d for d in self.db[D.AUX].find({"_id": {"$in": [p["objectId"] for p in packets]}})}
            enrich = []  # (packet, its object's aux after it), for the broker's BTSbot score
            for packet in sorted(packets, key=lambda p: (p["candidate"]["jd"], int(p["candid"]))):
                doc = D.alert_document(packet)
                self.db[D.ALERTS].replace_one({"_id": doc["_id"]}, doc, upsert=True)
                self.db[D.CUTOUTS].replace_one({"_id": doc["_id"]}, D.cutout_document(packet), upsert=True)
                aux = D.aux_document(packet, old.get(doc["objectId"]))
                old[doc["objectId"]] = aux
                self.db[D.AUX].replace_one({"_id": aux["_id"]}, aux, upsert=True)
                enrich.append((packet, aux))
            if self.broker_model is not None and enrich:  # BOOM's enrichment worker, run at once
                for candid, classes in boom_classifications(enrich, self.broker_model).items():
                    self.db[D.ALERTS].update_one({"_id": candid}, {"$set": {"classifications": classes}})
        return len(packets)

    # ---- tokens ------------------------------------------------------------------------------------
    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + self.token_lifetime_s
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            return self._tokens.get(token, 0.0) > time.time()

    def expire_tokens(self) -> None:
        """Every issued token expires now (what a client sees 7 days after its login)."""
        with self._lock:
            self._tokens.clear()

    def _count(self, key: str) -> None:
        with self._lock:
            self.request_counts[key] = self.request_counts.get(key, 0) + 1

    # ---- routes ------------------------------------------------------------------------------------
    def catalog(self, body) -> tuple[str | None, tuple | None]:
        name = str(body.get("catalog_name", "")).strip()
        if name in self.hidden or name not in self.db.list_collection_names():
            return None, _json(404, {"message": f"Catalog {name} does not exist"})
        return name, None

    def find(self, body: dict):
        name, err = self.catalog(body)
        if err:
            return err
        filt, proj, sort = body.get("filter"), body.get("projection"), body.get("sort")
        if not isinstance(filt, dict):
            return _json(400, {"message": "Invalid filter: MongoDB Filter must be a JSON object"})
        if proj is not None and not isinstance(proj, dict):
            return _json(400, {"message": "Invalid projection: MongoDB Projection must be a JSON object"})
        if sort is not None and not isinstance(sort, dict):
            return _json(400, {"message": "Invalid find options: Error converting sort to BSON document: "
                                          "expected a document"})
        try:
            with self._lock:
                cursor = self.db[name].find(filt, proj or None)
                if sort:
                    cursor = cursor.sort(list(sort.items()))
                if body.get("skip"):
                    cursor = cursor.skip(int(body["skip"]))
                if body.get("limit"):
                    cursor = cursor.limit(abs(int(body["limit"])))
                docs = list(cursor)
        except Exception as exc:  # what Mongo rejects
            return _json(500, {"message": f"Error finding documents: {type(exc).__name__}: {exc}"})
        return _json(200, {"message": "success", "data": docs})

    def pipeline(self, body: dict):
        """`POST /queries/pipeline`: the stages go to Mongo as they are (BOOM keeps no allowlist); a `$lookup`
        of a collection this deployment does not keep finds nothing, as on a real BOOM without it."""
        name, err = self.catalog(body)
        if err:
            return err
        stages = body.get("pipeline")
        if not isinstance(stages, list):
            return _json(400, {"message": "Invalid filter: Pipeline must be a JSON array"})
        if not all(isinstance(stage, dict) for stage in stages):
            return _json(400, {"message": "Invalid filter: MongoDB Filter must be a JSON object"})
        stages = [self._unhidden(stage) for stage in stages]
        try:
            with self._lock:
                docs = self._aggregate(name, stages)
        except Exception as exc:  # what Mongo rejects
            return _json(500, {"message": f"Error executing pipeline: {type(exc).__name__}: {exc}"})
        return _json(200, {"message": "success", "data": docs})

    def _aggregate(self, name: str, stages: list[dict]) -> list[dict]:
        """mongomock's aggregate, except that the first equality `$lookup` (localField/foreignField, no
        sub-pipeline) is done as one `$in` find of the foreign collection, as Mongo does it with an index:
        the same documents, in time linear in the batch (mongomock scans the foreign collection per document)."""
        at = next((i for i, st in enumerate(stages) if _equality_lookup(st)), None)
        rest = stages[at + 1:] if at is not None else []
        if at is None or any("$lookup" in st for st in rest):
            return list(self.db[name].aggregate(stages))
        docs = list(self.db[name].aggregate(stages[:at])) if at else list(self.db[name].find())
        spec = stages[at]["$lookup"]
        local = [_dotted(d, spec["localField"]) for d in docs]
        if any(v is None for v in local):  # Mongo matches a missing localField to null foreign fields
            return list(self.db[name].aggregate(stages))
        wanted = list({x for v in local for x in (v if isinstance(v, list) else [v])})
        by_value: dict = {}
        for f in self.db[spec["from"]].find({spec["foreignField"]: {"$in": wanted}}):
            by_value.setdefault(_dotted(f, spec["foreignField"]), []).append(f)
        for d, v in zip(docs, local):
            d[spec["as"]] = [f for x in (v if isinstance(v, list) else [v]) for f in by_value.get(x, [])]
        if not rest:
            return docs
        if len(rest) == 1 and isinstance(rest[0].get("$limit"), int) and rest[0]["$limit"] > 0:
            return docs[: rest[0]["$limit"]]
        tmp = mongomock.MongoClient().tmp.docs
        if docs:
            tmp.insert_many(docs)
        return list(tmp.aggregate(rest))

    def _unhidden(self, stage: dict) -> dict:
        lookup = stage.get("$lookup")
        if isinstance(lookup, dict) and lookup.get("from") in self.hidden:
            return {"$lookup": {**lookup, "from": "__absent__"}}
        return stage

    def count(self, body: dict):
        name, err = self.catalog(body)
        if err:
            return err
        if not isinstance(body.get("filter"), dict):
            return _json(400, {"message": "Invalid filter: MongoDB Filter must be a JSON object"})
        try:
            with self._lock:
                n = self.db[name].count_documents(body["filter"])
        except Exception as exc:
            return _json(500, {"message": f"Error counting documents: {type(exc).__name__}: {exc}"})
        return _json(200, {"message": "success", "data": n})

    def cutouts(self, query: str):
        params = parse_qs(query)
        if "candid" not in params:
            return _json(400, {"message": "candid or objectId query parameter must be provided"})
        try:
            candid = int(params["candid"][0])
        except ValueError:
            return _text(400, "Query deserialize error: invalid digit found in string")
        with self._lock:
            doc = self.db[D.CUTOUTS].find_one({"_id": candid})
        if doc is None:
            return _json(404, {"message": f"no cutouts found for candid {candid}"})
        data = {"candid": candid, **{k: base64.b64encode(doc[k]).decode() for k in D.STAMPS if k in doc}}
        return _json(200, {"message": f"cutouts found for candid: {candid}", "data": data})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "actix-web-standin"

    def log_message(self, fmt, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    def _handle(self) -> None:
        sim: BoomSim = self.server.sim
        parts = urlsplit(self.path)
        method, path = self.command, parts.path.rstrip("/") or "/"
        sim._count(f"{method} {path}")
        sim.ingest_due()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if sim.faults.latency_s:
            sim._stopping.wait(sim.faults.latency_s)
        fault = sim.faults.decide(method, path)
        if fault is not None and fault.kind == "timeout":
            sim._stopping.wait(fault.hang_s)
        if fault is not None and fault.kind in ("status", "html"):
            resp = _text(fault.status, "Bad Gateway" if fault.status == 502 else "Service Unavailable")
        elif fault is not None and fault.kind == "429":
            resp = (*_text(429, "Too Many Requests")[:3], {"Retry-After": str(max(0, math.ceil(fault.retry_after_s)))})
        else:
            try:
                resp = self._route(sim, method, path, parts.query, body)
            except Exception as exc:  # never leave a request unanswered
                log.exception("boom sim: unexpected error")
                resp = _json(500, {"message": f"{type(exc).__name__}: {exc}"})
        self._send(*resp)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _route(self, sim: BoomSim, method: str, path: str, query: str, body: bytes):
        if path == "/" and method == "GET":
            return _json(200, {"status": "success", "message": "Greetings from BOOM!"})
        if path == "/auth" and method == "POST":
            return self._auth(sim, body)
        if path not in PUBLIC:
            header = self.headers.get("Authorization")
            if not header:
                return _text(401, "Missing or invalid Authorization header")
            if not header.startswith("Bearer "):
                return _text(401, "Invalid Authorization header")
            if not sim.token_valid(header[len("Bearer "):]):
                return _text(401, "Invalid token")
        if path == "/catalogs" and method == "GET":
            names = sorted(n for n in sim.db.list_collection_names() if n not in sim.hidden)
            return _json(200, {"message": "success", "data": [{"name": n} for n in names]})
        if path == "/surveys/ztf/cutouts" and method == "GET":
            return sim.cutouts(query)
        routes = {"/queries/find": (sim.find, "filter"), "/queries/count": (sim.count, "filter"),
                  "/queries/pipeline": (sim.pipeline, "pipeline")}
        if path in routes and method == "POST":
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                return _text(400, "Content type error")
            if len(body) > MAX_JSON:
                return _text(413, f"JSON payload ({len(body)} bytes) is larger than allowed (limit: {MAX_JSON} bytes).")
            try:
                data = json.loads(body or b"null")
            except ValueError as exc:
                return _text(400, f"Json deserialize error: {exc}")
            if not isinstance(data, dict) or "catalog_name" not in data:
                return _text(400, "Json deserialize error: missing field `catalog_name`")
            route, required = routes[path]
            if required not in data:
                return _text(400, f"Json deserialize error: missing field `{required}`")
            return route(data)
        return 404, b"", "text/plain", {}

    def _auth(self, sim: BoomSim, body: bytes):
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return _text(415, "Content type error.")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if "username" not in form or "password" not in form:
            return _text(400, "Parse error: missing field `username` or `password`")
        if sim.users.get(form["username"]) != form["password"]:
            return _json(401, {"error": "invalid_client", "error_description": "Invalid username or password"})
        status, raw, ctype, _ = _json(200, {"access_token": sim.issue_token(), "token_type": "Bearer",
                                            "expires_in": int(sim.token_lifetime_s)})
        return status, raw, ctype, {"Cache-Control": "no-store"}

    def _send(self, status: int, raw: bytes, ctype: str, headers: dict) -> None:
        send_answer(self, status, raw, ctype, headers)


BoomSim.handler = _Handler
