"""Local SkyPortal/Fritz stand-in for tests and demos (`btsbot sim skyportal`).

An HTTP server on loopback implementing the endpoints the bot uses (auth, groups, allocations,
sources, source_groups, comments, annotations, follow-up requests with the SEDM facility), with the
semantics, status codes, messages and quirks described in shared/reference/skyportal-api.md: the
`{"status","data","version"}` envelope, 401 for a missing ACL, 400 for most errors, 404 only where
SkyPortal sends it, idempotent POST /api/sources, the rolled-back 400 of POST /api/source_groups,
comment de-duplication, unique annotations per (obj, origin), follow-up constraints answered with
HTTP 200 `ignored: true`, facility refusals as HTTP 200 `rejected: ...`, and submit failures as 400
with a committed `failed to submit: ...` row.

State lives in SQLite (`skyportal_store.Store`); faults come from `bot.sim.faults.Faults`.

    from bot.sim.skyportal import SkyPortalSim
    with SkyPortalSim() as sim:
        url = sim.url          # "http://127.0.0.1:<port>"
        token = sim.token      # the seeded bot token
"""

from __future__ import annotations

import argparse
import json
import math
import pprint
import re
import signal
import sys
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from textwrap import dedent
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.sim.faults import HTML_ERROR, Fault, Faults
from bot.sim.skyportal_store import OBJ_COLUMNS, Store, dumps, galactic, loads, utcnow

MALFORMED_AUTH = 'HTTP 401: Unauthorized (Credentials malformed; expected form "Authorization: token abc123")'
UNAUTHORIZED = "HTTP 401: Unauthorized"
FACILITY_MODES = ("ok", "reject", "fail", "active")
REJECT_BODY = "Request not accepted by the SEDM queue (simulated)"
FAIL_MESSAGE = "Connection to the SEDM queue failed (simulated)"
MAX_FOLLOWUP_REQUESTS = 1000
MAX_SOURCES_PER_PAGE = 500


class ApiError(Exception):
    """An error answer: `status` and `message` in the SkyPortal error envelope (or a bare 404 for HEAD)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Fail(Exception):
    """An exception inside a handler body, re-wrapped by the handler into its own 400 message."""


# ------------------------------------------------------------------------------------------------
# Validation helpers: pydantic bodies (style a), marshmallow-like schemas (style b), jsonschema (SEDM)
# ------------------------------------------------------------------------------------------------

def _pydantic(model: type[BaseModel], data: dict) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ApiError(400, "Invalid/missing parameters: " + "; ".join(parts)) from None


class SourceGroupsPost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objId: str
    inviteGroupIds: list[int] = []
    unsaveGroupIds: list[int] = []


class SourceGroupsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groupID: int
    active: bool
    requested: bool


class AnnotationPost(BaseModel):
    model_config = ConfigDict(extra="ignore")
    origin: str = Field(pattern=r"^\w+")
    data: dict
    group_ids: list[int] | None = None


class AnnotationPut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: dict | None = None
    origin: str | None = Field(default=None, pattern=r"^\w+")
    group_ids: list[int] | None = None


_TRUTHY = {"t", "T", "true", "True", "TRUE", "on", "On", "ON", "y", "Y", "yes", "Yes", "YES", "1", 1, True}
_FALSY = {"f", "F", "false", "False", "FALSE", "off", "Off", "OFF", "n", "N", "no", "No", "NO", "0", 0, False}


def _m_field(kind: str, value: Any) -> tuple[Any, Any]:
    """marshmallow-style deserialisation of one value: (value, None) or (None, error messages)."""
    if value is None:
        return None, ["Field may not be null."]
    if kind == "str":
        return (value, None) if isinstance(value, str) else (None, ["Not a valid string."])
    if kind == "int":
        if isinstance(value, bool):
            return None, ["Not a valid integer."]
        try:
            return int(value), None
        except (TypeError, ValueError):
            return None, ["Not a valid integer."]
    if kind == "float":
        if isinstance(value, bool):
            return None, ["Not a valid number."]
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None, ["Not a valid number."]
        if math.isnan(v) or math.isinf(v):
            return None, ["Special numeric values (nan or infinity) are not permitted."]
        return v, None
    if kind == "bool":
        try:
            if value in _TRUTHY:
                return True, None
            if value in _FALSY:
                return False, None
        except TypeError:
            pass
        return None, ["Not a valid boolean."]
    if kind == "dict":
        return (value, None) if isinstance(value, dict) else (None, ["Not a valid mapping type."])
    if kind == "any":
        return value, None
    if kind.startswith("list:"):
        if not isinstance(value, list):
            return None, ["Not a valid list."]
        out, errs = [], {}
        for i, item in enumerate(value):
            v, e = _m_field(kind[5:], item)
            if e:
                errs[i] = e
            out.append(v)
        return (None, errs) if errs else (out, None)
    raise AssertionError(kind)


def _m_load(schema: list[tuple[str, str, bool, Any]], data: dict) -> dict:
    """marshmallow `load` with unknown=RAISE: schema rows are (name, kind, required, load_default)."""
    out, errors = {}, {}
    known = set()
    for name, kind, required, default in schema:
        known.add(name)
        if name not in data:
            if required:
                errors[name] = ["Missing data for required field."]
            elif default is not _NO_DEFAULT:
                out[name] = default
            continue
        v, e = _m_field(kind, data[name])
        if e:
            errors[name] = e
        else:
            out[name] = v
    for k in data:
        if k not in known:
            errors[k] = ["Unknown field."]
    if errors:
        raise _Fail(str(errors))
    return out


_NO_DEFAULT = object()

FOLLOWUP_POST_SCHEMA = [
    ("obj_id", "str", True, _NO_DEFAULT),
    ("allocation_id", "int", True, _NO_DEFAULT),
    ("payload", "any", False, _NO_DEFAULT),
    ("target_group_ids", "list:int", False, _NO_DEFAULT),
    ("status", "str", False, "pending submission"),
    ("not_if_duplicates", "bool", False, _NO_DEFAULT),
    ("source_group_ids", "list:int", False, _NO_DEFAULT),
    ("ignore_source_group_ids", "list:int", False, _NO_DEFAULT),
    ("not_if_classified", "bool", False, _NO_DEFAULT),
    ("not_if_spectra_exist", "bool", False, _NO_DEFAULT),
    ("not_if_tns_classified", "bool", False, _NO_DEFAULT),
    ("not_if_tns_reported", "float", False, _NO_DEFAULT),
    ("not_if_assignment_exists", "bool", False, _NO_DEFAULT),
    ("ignore_allocation_ids", "list:int", False, _NO_DEFAULT),
    ("radius", "float", False, _NO_DEFAULT),
]

_OBJ_FLOATS = {"ra", "dec", "ra_dis", "dec_dis", "ra_err", "dec_err", "offset", "redshift", "redshift_error",
               "dist_nearest_source", "mag_nearest_source", "e_mag_nearest_source", "score", "t0"}
_OBJ_BOOLS = {"transient", "varstar", "is_roid"}
_OBJ_STRS = {"id", "redshift_origin", "summary", "mpc_name", "tns_name", "origin"}


def _obj_post_load(data: dict) -> dict:
    """Obj.__schema__().load for a new Obj (unknown keys -> 'Unknown field.')."""
    out, errors = {}, {}
    allowed = set(OBJ_COLUMNS) - {"internal_key"}
    for k, v in data.items():
        if k not in allowed:
            errors[k] = ["Unknown field."]
            continue
        if v is None and k not in ("id", "ra", "dec"):
            out[k] = None
            continue
        kind = ("float" if k in _OBJ_FLOATS else "bool" if k in _OBJ_BOOLS else "str" if k in _OBJ_STRS
                else "list:str" if k == "alias" else "any")
        val, err = _m_field(kind, v)
        if err:
            errors[k] = err
        else:
            out[k] = val
    if errors:
        raise _Fail(f"Invalid/missing parameters: {errors}")
    return out


# SEDM follow-up form (SP facility_apis/sedm.py): the payload is validated with jsonschema.validate,
# i.e. the latest draft (2020-12), where the draft-7 `dependencies` keyword is not a validator: the
# "Mix 'n Match" -> observation_choices requirement is therefore not enforced at validation (a
# payload without it fails later, in submit, as "failed to submit: 'observation_choices'").
SEDM_OBSERVATION_TYPES = ["3-shot (gri)", "4-shot (ugri)", "IFU", "4-shot+IFU", "3-shot+IFU", "Mix 'n Match"]


def sedm_form_schema() -> dict:
    today = datetime.utcnow().date()
    deps = [{"properties": {"observation_type": {"enum": [v], "title": "Mode"}}} for v in SEDM_OBSERVATION_TYPES[:-1]]
    deps.append({"properties": {
        "observation_type": {"enum": SEDM_OBSERVATION_TYPES[-1:], "title": "Mode"},
        "observation_choices": {"type": "array", "title": "Desired Observations",
                                "items": {"type": "string", "enum": ["u", "g", "r", "i", "IFU"]},
                                "uniqueItems": True, "minItems": 1}},
        "required": ["observation_choices"]})
    return {
        "type": "object",
        "properties": {
            "observation_type": {"type": "string", "enum": SEDM_OBSERVATION_TYPES, "title": "Mode", "default": "IFU"},
            "priority": {"type": "number", "default": 1.0, "minimum": 1, "maximum": 5, "title": "Priority"},
            "start_date": {"type": "string", "format": "date", "default": today.isoformat(),
                           "title": "Start Date (UT)"},
            "end_date": {"type": "string", "format": "date", "title": "End Date (UT)",
                         "default": (today + timedelta(days=7)).isoformat()},
            "advanced": {"type": "boolean", "title": "Show advanced options", "default": False},
        },
        "dependencies": {"observation_type": {"oneOf": deps}},
        "required": ["observation_type", "priority", "start_date", "end_date"],
    }


class _SchemaError:
    def __init__(self, message, validator, path, schema_path, schema, instance, context=()):
        self.message, self.validator = message, validator
        self.path, self.schema_path = list(path), list(schema_path)
        self.schema, self.instance, self.context = schema, instance, list(context)

    def _matches_type(self) -> bool:
        t = self.schema.get("type") if isinstance(self.schema, dict) else None
        return t is not None and _is_type(self.instance, t)

    def key(self):
        return (-len(self.path), self.path, self.validator not in ("anyOf", "oneOf"), False, not self._matches_type())

    def __str__(self) -> str:
        def idx(word, indices):
            return word + "".join(f"[{i!r}]" for i in indices)

        def pretty(x):
            return pprint.pformat(x, width=72, sort_dicts=False).replace("\n", "\n" + " " * 16)

        return dedent(f"""\
            {self.message}

            Failed validating {self.validator!r} in {idx('schema', self.schema_path[:-1])}:
                {pretty(self.schema)}

            On {idx('instance', self.path)}:
                {pretty(self.instance)}
            """.rstrip())


def _is_type(v: Any, t: str) -> bool:
    return {
        "object": isinstance(v, dict), "array": isinstance(v, list), "string": isinstance(v, str),
        "boolean": isinstance(v, bool), "null": v is None,
        "number": isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    }.get(t, True)


def _iter_errors(inst: Any, schema: dict, path=(), spath=()):
    """A small Draft 2020-12 validator for the keywords the facility forms use."""
    for kw, val in schema.items():
        sp = (*spath, kw)
        if kw == "type" and not _is_type(inst, val):
            yield _SchemaError(f"{inst!r} is not of type {val!r}", kw, path, sp, schema, inst)
        elif kw == "enum" and not any(inst == e and type(inst) is not bool or inst is e for e in val):
            yield _SchemaError(f"{inst!r} is not one of {val!r}", kw, path, sp, schema, inst)
        elif kw == "minimum" and _is_type(inst, "number") and inst < val:
            yield _SchemaError(f"{inst!r} is less than the minimum of {val!r}", kw, path, sp, schema, inst)
        elif kw == "maximum" and _is_type(inst, "number") and inst > val:
            yield _SchemaError(f"{inst!r} is greater than the maximum of {val!r}", kw, path, sp, schema, inst)
        elif kw == "required" and isinstance(inst, dict):
            for name in val:
                if name not in inst:
                    yield _SchemaError(f"{name!r} is a required property", kw, path, sp, schema, inst)
        elif kw == "properties" and isinstance(inst, dict):
            for name, sub in val.items():
                if name in inst:
                    yield from _iter_errors(inst[name], sub, (*path, name), (*sp, name))
        elif kw == "items" and isinstance(inst, list):
            for i, item in enumerate(inst):
                yield from _iter_errors(item, val, (*path, i), sp)
        elif kw == "minItems" and isinstance(inst, list) and len(inst) < val:
            yield _SchemaError(f"{inst!r} should be non-empty" if val == 1 else f"{inst!r} is too short",
                               kw, path, sp, schema, inst)
        elif kw == "uniqueItems" and val and isinstance(inst, list):
            seen = []
            for item in inst:
                if item in seen:
                    yield _SchemaError(f"{inst!r} has non-unique elements", kw, path, sp, schema, inst)
                    break
                seen.append(item)
        elif kw == "oneOf":
            ctx, ok = [], 0
            for i, sub in enumerate(val):
                errs = list(_iter_errors(inst, sub, path, (*sp, i)))
                ctx.extend(errs)
                ok += not errs
            if ok == 0:
                yield _SchemaError(f"{inst!r} is not valid under any of the given schemas", kw, path, sp,
                                   schema, inst, ctx)
        # "dependencies", "format", "title", "default": not validators in Draft 2020-12


def schema_error(instance: Any, schema: dict) -> _SchemaError | None:
    """jsonschema's best_match of the errors, or None when the instance is valid."""
    errors = list(_iter_errors(instance, schema))
    if not errors:
        return None
    best = max(errors, key=lambda e: e.key())
    while best.context:
        smallest = sorted(best.context, key=lambda e: e.key())[:2]
        if len(smallest) == 2 and smallest[0].key() == smallest[1].key():
            return best
        best = smallest[0]
    return best


def sedm_prepare_payload(payload: dict, existing: dict | None = None) -> dict:
    """SEDMAPI.prepare_payload: default exposure_time/maximum_airmass/maximum_fwhm, drop `advanced`."""
    payload = dict(payload)
    for key, default in (("exposure_time", -1), ("maximum_airmass", 2.8), ("maximum_fwhm", 10)):
        if key not in payload:
            payload[key] = (existing or {}).get(key, default)
    payload.pop("advanced", None)
    return payload


# ------------------------------------------------------------------------------------------------
# Request context and routing
# ------------------------------------------------------------------------------------------------

class Ctx:
    def __init__(self, sim: "SkyPortalSim", method: str, path: str, query: dict, headers, raw: bytes,
                 uri: str | None = None):
        self.sim, self.store = sim, sim.store
        self.method, self.path, self.query, self.headers, self.raw = method, path, query, headers, raw
        self.uri = uri or path
        self.inserted_sources: list[tuple[str, int]] = []
        self.user = None
        self.token = None

    def json(self) -> dict:
        """BaseHandler.get_json: empty -> {}; not JSON / not an object -> plain Exception (HTTP 500)."""
        if len(self.raw) == 0:
            return {}
        try:
            data = json.loads(self.raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(500, f"JSON decode of request body failed on {self.uri}."
                                " Please ensure all requests are of type application/json.") from None
        if not isinstance(data, dict):
            raise ApiError(500, "Please ensure posted data is of type application/json")
        return data

    def arg(self, name: str, default: Any = None) -> Any:
        """get_query_argument: a bool default parses true/yes/t/1 (case-insensitive) as True."""
        if name not in self.query:
            return default
        v = self.query[name]
        if isinstance(default, bool):
            return str(v).lower() in ("true", "yes", "t", "1")
        return v

    @property
    def admin(self) -> bool:
        return self.store.is_admin(self.user)

    def accessible(self) -> list[int]:
        return self.store.accessible_group_ids(self.user)


def _int_arg(name: str, value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid {name}: {value}") from None


def _page(ctx: Ctx, default_n: int, max_n: int) -> tuple[int, int]:
    """utils/parse.py get_page_and_n_per_page."""
    p, n = ctx.arg("pageNumber", 1), ctx.arg("numPerPage", default_n)
    try:
        p = int(p)
    except (TypeError, ValueError):
        raise ApiError(400, "Invalid page number value.") from None
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise ApiError(400, "Invalid numPerPage value.") from None
    if p < 1:
        raise ApiError(400, "Page number must be greater than 0.")
    if n < 1:
        raise ApiError(400, "Number per page must be greater than 0.")
    return p, min(n, max_n)


def _parse_date(value: str) -> datetime:
    v = value.strip().replace("Z", "").replace("T", " ")
    try:
        return datetime.fromisoformat(v)
    except ValueError:
        raise ApiError(500, f"Could not match input '{value}' to any of the following formats") from None


_OBJ_ID = "(?P<obj_id>[^/]+)"
Route = tuple["re.Pattern[str]", dict[str, tuple[Callable, Any]]]


class SkyPortalApi:
    """The endpoint implementations (one instance per simulator)."""

    def __init__(self, sim: "SkyPortalSim"):
        self.sim = sim
        self.store = sim.store
        auth = []  # auth only, no ACL
        self.routes: list[Route] = [(re.compile(p + "/?$"), m) for p, m in [
            (r"/api/sysinfo", {"GET": (self.sysinfo, None)}),
            (r"/api/internal/profile", {"GET": (self.profile, auth)}),
            (r"/api/groups", {"GET": (self.groups, auth)}),
            (r"/api/groups/(?P<group_id>[^/]+)", {"GET": (self.group_one, auth)}),
            (r"/api/streams", {"GET": (self.streams, auth)}),
            (r"/api/allocation", {"GET": (self.allocations, auth)}),
            (r"/api/allocation/(?P<allocation_id>[^/]+)", {"GET": (self.allocation_one, auth)}),
            (r"/api/instrument", {"GET": (self.instruments, auth)}),
            (r"/api/instrument/(?P<instrument_id>[^/]+)", {"GET": (self.instrument_one, auth)}),
            (r"/api/sources", {"GET": (self.sources_list, auth), "POST": (self.sources_post, ["Upload data"])}),
            (rf"/api/sources/{_OBJ_ID}/comments", {"GET": (self.comments_get, auth),
                                                   "POST": (self.comments_post, ["Comment"])}),
            (rf"/api/sources/{_OBJ_ID}/comments/(?P<comment_id>[^/]+)", {"GET": (self.comment_one, auth)}),
            (rf"/api/sources/{_OBJ_ID}/annotations", {"GET": (self.annotations_get, auth),
                                                      "POST": (self.annotations_post, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/annotations/(?P<annotation_id>[^/]+)", {
                "GET": (self.annotation_one, auth), "PUT": (self.annotation_put, ["Annotate"]),
                "DELETE": (self.annotation_delete, ["Annotate"])}),
            (rf"/api/sources/{_OBJ_ID}/groups", {"GET": (self.source_groups_of, auth)}),
            (rf"/api/sources/{_OBJ_ID}", {"GET": (self.source_get, auth), "HEAD": (self.source_head, auth),
                                          "DELETE": (self.source_delete, ["Manage sources"])}),
            (r"/api/source_groups", {"POST": (self.source_groups_post, ["Upload data"])}),
            (rf"/api/source_groups/{_OBJ_ID}", {"PATCH": (self.source_groups_patch, ["Upload data"])}),
            (r"/api/followup_request", {"GET": (self.followup_list, auth),
                                        "POST": (self.followup_post, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)/comment", {
                "PUT": (self.followup_comment_put, ["Upload data"])}),
            (r"/api/followup_request/(?P<request_id>[^/]+)", {
                "GET": (self.followup_one, auth), "PUT": (self.followup_put, ["Upload data"]),
                "DELETE": (self.followup_delete, ["Upload data"])}),
        ]]

    # ---- envelope / dispatch ----------------------------------------------------------------------
    def ok(self, data: Any = None) -> tuple[int, dict]:
        return 200, {"status": "success", "data": {} if data is None else data, "version": self.store.version}

    def error_body(self, message: str) -> dict:
        return {"status": "error", "message": message, "data": {}, "version": self.store.version}

    def authenticate(self, ctx: Ctx, acls: list[str]) -> None:
        """baselayer access.py: `token <id>` only; unknown token 401; expired user 403; missing ACL 401."""
        header = ctx.headers.get("Authorization")
        if not (header and header.startswith("token ")):
            raise ApiError(401, MALFORMED_AUTH)
        tok = self.store.token(header.replace("token", "").strip())
        if tok is None:
            raise ApiError(401, UNAUTHORIZED)
        user = self.store.user(tok["user_id"])
        if user is None:
            raise ApiError(401, UNAUTHORIZED)
        if user["expired"]:
            raise ApiError(403, "User account expired")
        tok_acls = loads(tok["acls"])
        if acls and "System admin" not in tok_acls and not set(acls) <= set(tok_acls):
            raise ApiError(401, UNAUTHORIZED)
        ctx.user, ctx.token = user, tok

    def dispatch(self, ctx: Ctx) -> tuple[int, dict | None]:
        for pattern, methods in self.routes:
            m = pattern.match(ctx.path)
            if not m:
                continue
            if ctx.method not in methods:
                raise ApiError(405, "HTTP 405: Method Not Allowed")
            func, acls = methods[ctx.method]
            if acls is not None:
                self.authenticate(ctx, acls)
            kwargs = {k: unquote(v) for k, v in m.groupdict().items()}
            return func(ctx, **kwargs)
        if ctx.path.startswith("/api/"):
            if ctx.method != "GET":
                raise ApiError(405, "HTTP 405: Method Not Allowed")
            self.authenticate(ctx, [])
            raise ApiError(400, "Invalid API endpoint")
        raise ApiError(404, "HTTP 404: Not Found")

    # ---- health, profile, groups, allocations, instruments -----------------------------------------
    def sysinfo(self, ctx: Ctx):
        return self.ok({"gitlog": [{"time": "2026-08-21T00:00:00+00:00", "sha": "8bd346c0",
                                    "description": "SkyPortal simulator (btsbot sim skyportal)",
                                    "pr_nr": None, "pr_url": None,
                                    "commit_url": "https://github.com/skyportal/skyportal/commit/8bd346c0"}],
                        "cosmology": "FlatLambdaCDM(H0=67.66, Om0=0.30966)", "cosmoref": "Planck 2018"})

    def profile(self, ctx: Ctx):
        u = ctx.user
        d = self.store.user_dict(u)
        tokens = [{"id": t["id"], "name": t["name"], "acls": loads(t["acls"]), "created_at": t["created_at"]}
                  for t in self.store.q("SELECT * FROM tokens WHERE user_id = ? ORDER BY rowid", (u["id"],))]
        d.update({"roles": loads(u["roles"]), "permissions": loads(u["permissions"]), "acls": loads(u["acls"]),
                  "tokens": tokens, "preferences": {}, "groupAdmissionRequests": [], "streams": [],
                  "is_anonymous": False})
        return self.ok(d)

    def _group_rows(self, ids: list[int] | None = None, single: bool = False) -> list:
        rows = self.store.q("SELECT * FROM groups_ ORDER BY lower(name)")
        return [g for g in rows if (ids is None or g["id"] in ids) and (single or not g["single_user_group"])]

    def groups(self, ctx: Ctx):
        single = ctx.arg("includeSingleUserGroups", False)
        name = ctx.arg("name")
        if name is not None:
            return self.ok([self.store.group_dict(g) for g in self._group_rows(single=True) if g["name"] == name])
        all_groups = []
        for g in self._group_rows(single=single):
            all_groups.append({**self.store.group_dict(g), "streams": []})
        return self.ok({
            "user_groups": [self.store.group_dict(g) for g in
                            self._group_rows(self.store.member_group_ids(ctx.user["id"]), single)],
            "user_accessible_groups": [self.store.group_dict(g) for g in self._group_rows(ctx.accessible(), single)],
            "all_groups": all_groups,
        })

    def group_one(self, ctx: Ctx, group_id: str):
        gid = _int_arg("group_id", group_id)
        g = self.store.group(gid)
        if g is None:
            raise ApiError(400, f"Cannot find Group with id {gid}")
        d = self.store.group_dict(g)
        if ctx.arg("includeGroupUsers", True):
            users = []
            for gu in self.store.q("SELECT * FROM group_users WHERE group_id = ? ORDER BY user_id", (gid,)):
                u = self.store.user(gu["user_id"])
                users.append({"id": u["id"], "username": u["username"], "first_name": u["first_name"],
                              "last_name": u["last_name"], "contact_email": u["contact_email"],
                              "contact_phone": None, "oauth_uid": None, "admin": bool(gu["admin"]),
                              "can_save": bool(gu["can_save"]), "can_share_photometry": True})
            d["users"] = users
        d["streams"], d["filters"] = [], []
        return self.ok(d)

    def streams(self, ctx: Ctx):
        return self.ok([{"id": s["id"], "name": s["name"], "altdata": None, "created_at": s["created_at"],
                         "modified": s["created_at"]} for s in self.store.q("SELECT * FROM streams ORDER BY id")])

    def _readable_allocation(self, ctx: Ctx, allocation_id: int):
        a = self.store.allocation(allocation_id)
        if a is None or (not ctx.admin and a["group_id"] not in ctx.accessible()):
            return None
        return a

    def allocations(self, ctx: Ctx):
        rows = [a for a in self.store.q("SELECT * FROM allocations ORDER BY id")
                if ctx.admin or a["group_id"] in ctx.accessible()]
        inst_id = ctx.arg("instrument_id")
        if inst_id is not None:
            rows = [a for a in rows if str(a["instrument_id"]) == str(inst_id).strip()]
        api_type = ctx.arg("apiType")
        if api_type is not None:
            if api_type not in ("api_classname", "api_classname_obsplan"):
                raise ApiError(400, f"apitype can only be api_classname or api_classname_obsplan, not {api_type}")
            rows = [a for a in rows if (self.store.instrument_dict(a["instrument_id"]) or {}).get(api_type)]
        implements = ctx.arg("apiImplements")
        if implements is not None:
            if implements not in ("update", "delete", "get", "submit", "send", "remove", "retrieve", "queued",
                                  "remove_queue", "prepare_payload", "send_skymap", "queued_skymap",
                                  "remove_skymap", "retrieve_log", "update_status"):
                raise ApiError(400, f"apiImplements {implements} not a valid argument")
            if api_type is None:
                raise ApiError(400, "apiImplements can only be checked if apitype is specified")
            sedm = {"submit", "update", "delete", "prepare_payload"}
            rows = [a for a in rows if api_type == "api_classname" and implements in sedm
                    and (self.store.instrument_dict(a["instrument_id"]) or {}).get("api_classname") == "SEDMAPI"]
        out = []
        for a in rows:
            d = self.store.allocation_dict(a)
            d["allocation_users"] = []
            out.append(d)
        out.sort(key=lambda d: ((d["instrument"]["telescope"] or {}).get("name") or "", d["instrument"]["name"],
                                d.get("pi") or ""))
        return self.ok(out)

    def allocation_one(self, ctx: Ctx, allocation_id: str):
        aid = _int_arg("allocation_id", allocation_id)
        p, n = _page(ctx, 50, MAX_FOLLOWUP_REQUESTS)
        sort_by, order = ctx.arg("sortBy", "created_at"), ctx.arg("sortOrder", "asc")
        if sort_by not in ("created_at", "modified", "status", "obj"):
            raise ApiError(400, "Invalid sortBy value.")
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid sortOrder value.")
        a = self._readable_allocation(ctx, aid)
        if a is None:
            raise ApiError(400, "Could not retrieve allocation.")
        reqs = [self.store.followup_dict(r) for r in
                self.store.q("SELECT * FROM followup_requests WHERE allocation_id = ?", (aid,))]
        reqs.sort(key=lambda r: (r["obj_id"] if sort_by == "obj" else r[sort_by], r["id"]), reverse=order == "desc")
        d = self.store.allocation_dict(a)
        d["requests"] = reqs[(p - 1) * n: p * n]
        d["ephemeris"] = {}
        d["telescope"] = d["instrument"]["telescope"]
        return self.ok({"allocation": d, "totalMatches": len(reqs)})

    def _instrument_out(self, inst_id: int) -> dict:
        d = self.store.instrument_dict(inst_id)
        d.update({"number_of_fields": 0, "region_summary": None, "log_exists": False})
        return d

    def instruments(self, ctx: Ctx):
        rows = self.store.q("SELECT id, name FROM instruments ORDER BY id")
        name = ctx.arg("name")
        return self.ok([self._instrument_out(r["id"]) for r in rows if name is None or r["name"] == name])

    def instrument_one(self, ctx: Ctx, instrument_id: str):
        iid = _int_arg("instrument_id", instrument_id)
        if self.store.instrument_dict(iid) is None:
            raise ApiError(400, f"Could not load instrument with ID {iid}")
        return self.ok(self._instrument_out(iid))

    # ---- sources ----------------------------------------------------------------------------------
    def _visible_source_rows(self, ctx: Ctx, obj_id: str) -> list:
        rows = self.store.q("SELECT * FROM sources WHERE obj_id = ? ORDER BY group_id", (obj_id,))
        acc = ctx.accessible()
        return [s for s in rows if ctx.admin or s["group_id"] in acc]

    def sources_post(self, ctx: Ctx):
        data = ctx.json()
        data.pop("refresh_source", None)
        st = self.store
        st.begin()
        try:
            obj_id, saved = self._post_source(ctx, data)
        except Exception as e:  # the handler wraps every exception (source.py:2492-2493)
            st.rollback()
            raise ApiError(400, f"Failed to post source: {e}") from None
        st.commit()
        self._run_default_followups(ctx)
        return self.ok({"id": obj_id, "saved_to_groups": saved})

    def _post_source(self, ctx: Ctx, data: dict) -> tuple[str, list[int]]:
        st, user = self.store, ctx.user
        if "id" not in data:
            raise _Fail("'id'")
        if isinstance(data["id"], (int, float)) and not isinstance(data["id"], bool):
            data["id"] = str(data["id"])
        obj_id = data["id"]
        if not isinstance(obj_id, str):
            raise _Fail(f"Invalid/missing parameters: {{'id': ['Not a valid string.']}}")
        if " " in obj_id:
            raise _Fail("No spaces allowed in source ID")
        if not re.match(r"^[a-zA-Z0-9_\-;:+.]+$", obj_id):
            raise _Fail("Only letters, numbers, underscores, periods, semicolons, colons, +, and - are "
                        "allowed in source ID")
        exists = st.obj(obj_id) is not None
        ra, dec = data.get("ra"), data.get("dec")
        if (ra is None or dec is None) and not exists:
            raise _Fail("RA/Declination must not be null for a new Obj")
        member = st.member_group_ids(user["id"])
        if not member:
            raise _Fail("You must belong to one or more groups before you can add sources.")
        accessible = ctx.accessible()
        if "group_ids" in data:
            raw = data.pop("group_ids")
            try:
                group_ids = [int(g) for g in raw]
            except (TypeError, ValueError):
                raise _Fail("Invalid group_ids field. Please specify at least one valid group ID that you "
                            "belong to.") from None
            if not ctx.admin:
                for gid in group_ids:
                    if gid not in accessible:
                        raise _Fail(f"Cannot find group_id {gid}. Please remove and try again.")
        else:
            group_ids = member
        group_ids = list(dict.fromkeys(group_ids))
        if not group_ids:
            raise _Fail("Invalid group_ids field. Please specify at least one valid group ID that you belong to.")
        ignore: dict[int, list[int]] = {}
        if "ignore_if_in_group_ids" in data:
            raw = data["ignore_if_in_group_ids"]
            if not isinstance(raw, dict):
                raise _Fail("Invalid ignore_if_in_group_ids field. Please specify a dict of group_ids to ignore.")
            try:
                ignore = {int(k): [int(g) for g in v] for k, v in raw.items()}
            except (TypeError, ValueError):
                raise _Fail("Invalid ignore_if_in_group_ids field. Please specify a dict of group_ids to "
                            "ignore.") from None
        if not set(ignore) <= set(group_ids):
            raise _Fail("Invalid ignore_if_in_group_ids field. Please specify a dictwhich groups are in the "
                        "group_ids field, and values are listsof group_ids for which if there is a source, "
                        "cancel saving to the associated group_id from the key")
        saver_per_group = data.pop("saver_per_group_id", None)
        if saver_per_group is not None and not ctx.admin:
            raise _Fail("You must be an admin to specify a saver_per_group_id field.")
        saver_per_group = {int(k): int(v) for k, v in (saver_per_group or {}).items()}
        if not exists:
            fields = _obj_post_load(data)
            st.insert_obj(obj_id, fields.pop("ra"), fields.pop("dec"),
                          {k: v for k, v in fields.items() if k != "id"})
            ignore = {}
        if set(st.existing_group_ids(group_ids)) != set(group_ids):
            raise _Fail("Not all group_ids could be loaded.")
        skipped = []
        now = utcnow()
        for gid in group_ids:
            if ignore.get(gid):
                marks = ",".join("?" * len(ignore[gid]))
                hit = st.q1(f"SELECT 1 FROM sources WHERE obj_id = ? AND active = 1 AND group_id IN ({marks})",
                            [obj_id, *ignore[gid]])
                if hit:
                    skipped.append(gid)
                    continue
            if not ctx.admin:
                gu = st.group_user(gid, user["id"])
                if gu is None:
                    raise _Fail(f"User is not a member of the group with ID {gid}.")
                if not gu["can_save"]:
                    raise _Fail(f"User does not have power to save to group with ID {gid}.")
            saver = saver_per_group.get(gid, user["id"])
            row = st.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (obj_id, gid))
            if row is None:
                st.x("INSERT INTO sources (obj_id, group_id, saved_by_id, saved_at, active, requested, created_at,"
                     " modified) VALUES (?,?,?,?,1,0,?,?)", (obj_id, gid, saver, now, now, now))
                ctx.inserted_sources.append((obj_id, gid))
            elif not row["active"]:
                st.x("UPDATE sources SET active = 1, saved_by_id = ?, modified = ? WHERE id = ?",
                     (saver, now, row["id"]))
        return obj_id, sorted(set(group_ids) - set(skipped))

    def _source_groups(self, ctx: Ctx, obj_id: str, include_requested: bool, pending_only: bool) -> list[dict]:
        out = []
        for s in self._visible_source_rows(ctx, obj_id):
            if include_requested:
                keep = s["requested"] or s["active"]
            else:
                keep = s["active"] or pending_only
            if pending_only:
                keep = keep and not s["active"] and s["requested"]
            if not keep:
                continue
            g = self.store.group(s["group_id"])
            d = self.store.group_dict(g)
            d.update({"active": bool(s["active"]), "requested": bool(s["requested"]), "saved_at": s["saved_at"],
                      "saved_by": self.store.user_dict(self.store.user(s["saved_by_id"]))})
            out.append(d)
        return out

    def _source_dict(self, ctx: Ctx, o) -> dict:
        st = self.store
        d = st.obj_dict(o)
        acc = ctx.accessible()
        reqs = []
        for r in st.q("SELECT * FROM followup_requests WHERE obj_id = ? AND status != 'deleted' ORDER BY id",
                      (o["id"],)):
            a = st.allocation(r["allocation_id"])
            if ctx.admin or (a and a["group_id"] in acc):
                fd = st.followup_dict(r)
                fd.pop("obj", None)
                fd.pop("target_groups", None)
                reqs.append(fd)
        d["followup_requests"] = reqs
        d["assignments"] = []
        d["galaxies"] = None
        dups = set()
        for other in st.objs_within(o["ra"], o["dec"], 4 / 3600):
            if other["id"] != o["id"] and self._visible_source_rows(ctx, other["id"]):
                dups.add(other["id"])
        d["duplicates"] = sorted(dups) or None
        anns = sorted(self._visible_annotations(ctx, o["id"]), key=lambda a: a["origin"])
        d["annotations"] = [{**st.annotation_dict(a), "author": st.user_dict(st.user(a["author_id"])),
                             "type": "source"} for a in anns]
        d["classifications"] = st.classifications(o["id"])
        gl, gb = galactic(o["ra"], o["dec"])
        d.update({"gal_lat": gb, "gal_lon": gl, "luminosity_distance": None, "dm": None,
                  "angular_diameter_distance": None, "ebv": None})
        if ctx.arg("includeTags", True):
            d["tags"] = []
        if ctx.arg("includeAssociatedObjs", True):
            d["associated_objs"] = []
        if ctx.arg("includeComments", False):
            comments = sorted(self._visible_comments(ctx, o["id"], None, any_channel=True),
                              key=lambda c: (c["created_at"], c["id"]), reverse=True)
            d["comments"] = [{**st.comment_dict(c), "author": st.user_dict(st.user(c["author_id"]))}
                             for c in comments]
        if ctx.arg("includePhotometry", False):
            d["photometry"] = []
        if ctx.arg("includeThumbnails", False):
            d["thumbnails"] = []
        if ctx.arg("includePhotometryExists", False):
            d["photometry_exists"] = False
        flags = st.flags(o["id"])
        if ctx.arg("includeSpectrumExists", False):
            d["spectrum_exists"] = bool(flags and flags["spectra"])
        if ctx.arg("includeCommentExists", False):
            d["comment_exists"] = bool(self._visible_comments(ctx, o["id"], None, any_channel=True))
        if ctx.arg("includePeriodExists", False):
            d["period_exists"] = any(isinstance(a["data"], dict) and any(k in a["data"] for k in
                                     ("period", "Period", "PERIOD")) for a in d["annotations"])
        if ctx.arg("includeCandidates", False):
            d["candidates"] = []
        d["groups"] = self._source_groups(ctx, o["id"], ctx.arg("includeRequested", False),
                                          ctx.arg("pendingOnly", False))
        return d

    def source_get(self, ctx: Ctx, obj_id: str):
        o = self.store.obj(obj_id, case_insensitive=True)
        if o is None:
            raise ApiError(404, "Source not found")
        try:
            return self.ok(self._source_dict(ctx, o))
        except ApiError:
            raise
        except Exception as e:
            raise ApiError(400, f"Cannot retrieve source: {e}") from None

    def source_head(self, ctx: Ctx, obj_id: str):
        if self._visible_source_rows(ctx, obj_id):
            return self.ok()
        return 404, None

    def source_groups_of(self, ctx: Ctx, obj_id: str):
        if self.store.obj(obj_id) is None:
            raise ApiError(404, "Source not found")
        rows = [s for s in self._visible_source_rows(ctx, obj_id) if s["active"] or s["requested"]]
        return self.ok([self.store.group_dict(self.store.group(s["group_id"])) for s in rows])

    def source_delete(self, ctx: Ctx, obj_id: str):
        data = ctx.json()
        gid = data.get("group_id")
        if gid is None:
            raise ApiError(400, "Missing required parameter `group_id`")
        try:
            gid = int(gid)
        except (TypeError, ValueError):
            raise ApiError(400, "Inadequate permissions.") from None
        if not ctx.admin and gid not in ctx.accessible():
            raise ApiError(400, "Inadequate permissions.")
        row = self.store.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (obj_id, gid))
        if row is None:
            raise ApiError(400, f"No such source {obj_id} in group {gid}.")
        self.store.x("UPDATE sources SET active = 0, unsaved_by_id = ?, modified = ? WHERE id = ?",
                     (ctx.user["id"], utcnow(), row["id"]))
        return self.ok()

    def sources_list(self, ctx: Ctx):
        st = self.store
        p, n = _page(ctx, 100, MAX_SOURCES_PER_PAGE)
        include_requested = ctx.arg("includeRequested", False)
        acc = ctx.accessible()
        group_ids = ctx.arg("group_ids")
        if group_ids is not None:
            try:
                group_ids = [int(g) for g in str(group_ids).split(",") if g.strip()]
            except ValueError:
                raise ApiError(400, f"Invalid group_ids: {group_ids}") from None
            if not all(g in acc for g in group_ids):
                raise ApiError(400, f"One of the requested groups in '{group_ids}' is inaccessible to user.")
        rows = []
        for s in st.q("SELECT * FROM sources ORDER BY saved_at DESC, id DESC"):
            if not (ctx.admin or s["group_id"] in acc):
                continue
            if group_ids is not None and s["group_id"] not in group_ids:
                continue
            if not (s["active"] or (include_requested and s["requested"])):
                continue
            if ctx.arg("savedAfter") and s["saved_at"] < _parse_date(ctx.arg("savedAfter")).isoformat():
                continue
            if ctx.arg("savedBefore") and s["saved_at"] > _parse_date(ctx.arg("savedBefore")).isoformat():
                continue
            if ctx.arg("sourceID") and ctx.arg("sourceID").strip().lower() not in s["obj_id"].lower():
                continue
            rows.append(s)
        if ctx.arg("saveSummary", False):
            page = rows[(p - 1) * n: p * n]
            return self.ok({"sources": [st.source_row_dict(s) for s in page], "totalMatches": len(rows),
                            "pageNumber": p, "numPerPage": n})
        obj_ids = list(dict.fromkeys(s["obj_id"] for s in rows))
        if p > 1 and (p - 1) * n >= len(obj_ids):
            raise ApiError(400, "Page number out of range.")
        out = []
        for oid in obj_ids[(p - 1) * n: p * n]:
            o = st.obj(oid)
            d = st.obj_dict(o)
            d["classifications"] = st.classifications(oid)
            d["annotations"] = [st.annotation_dict(a) for a in
                                sorted(self._visible_annotations(ctx, oid), key=lambda a: a["origin"])]
            gl, gb = galactic(o["ra"], o["dec"])
            d.update({"gal_lon": gl, "gal_lat": gb, "luminosity_distance": None, "dm": None,
                      "angular_diameter_distance": None})
            d["groups"] = self._source_groups(ctx, oid, include_requested, False)
            out.append(d)
        return self.ok({"sources": out, "totalMatches": len(obj_ids), "pageNumber": p, "numPerPage": n})

    def source_groups_post(self, ctx: Ctx):
        body = _pydantic(SourceGroupsPost, ctx.json())
        st = self.store
        if not body.inviteGroupIds and not body.unsaveGroupIds:
            raise ApiError(400, "Missing required parameter: one of either unsaveGroupIds or inviteGroupIds "
                                "must be provided")
        if st.obj(body.objId) is None:
            raise ApiError(404, f"Obj {body.objId} not found")
        acc = ctx.accessible()
        now = utcnow()
        st.begin()
        try:
            for gid in body.inviteGroupIds:
                active, requested = (1, 0) if gid in acc else (0, 1)
                row = st.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (body.objId, gid))
                if row is None:
                    if st.group(gid) is None:
                        raise ApiError(500, '(psycopg2.errors.ForeignKeyViolation) insert or update on table '
                                            '"sources" violates foreign key constraint "sources_group_id_fkey"')
                    st.x("INSERT INTO sources (obj_id, group_id, saved_by_id, saved_at, active, requested,"
                         " created_at, modified) VALUES (?,?,?,?,?,?,?,?)",
                         (body.objId, gid, ctx.user["id"], now, active, requested, now, now))
                    ctx.inserted_sources.append((body.objId, gid))
                elif not row["active"]:
                    st.x("UPDATE sources SET active = ?, requested = ?, modified = ? WHERE id = ?",
                         (active, requested, now, row["id"]))
                else:
                    raise ApiError(400, f"Source already saved to group w/ ID {gid}")
            for gid in body.unsaveGroupIds:
                row = st.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (body.objId, gid))
                if row is None:
                    raise ApiError(400, "Specified source is not saved to group from which it was to be unsaved.")
                st.x("UPDATE sources SET active = 0, unsaved_by_id = ?, unsaved_at = ?, modified = ? WHERE id = ?",
                     (ctx.user["id"], now, now, row["id"]))
        except BaseException:
            st.rollback()
            raise
        st.commit()
        self._run_default_followups(ctx)
        return self.ok({})

    def source_groups_patch(self, ctx: Ctx, obj_id: str):
        body = _pydantic(SourceGroupsPatch, ctx.json())
        row = self.store.q1("SELECT * FROM sources WHERE obj_id = ? AND group_id = ?", (obj_id, body.groupID))
        if row is None:
            raise ApiError(500, "'NoneType' object has no attribute 'active'")
        self.store.x("UPDATE sources SET active = ?, requested = ?, modified = ? WHERE id = ?",
                     (int(body.active), int(body.requested), utcnow(), row["id"]))
        return self.ok()

    # ---- comments ---------------------------------------------------------------------------------
    def _visible_comments(self, ctx: Ctx, obj_id: str, channel: str | None, any_channel: bool = False) -> list:
        rows = self.store.q("SELECT * FROM comments WHERE obj_id = ? ORDER BY created_at, id", (obj_id,))
        acc = set(ctx.accessible())
        out = []
        for c in rows:
            if not any_channel and c["channel"] != channel:
                continue
            if ctx.admin or c["author_id"] == ctx.user["id"] or acc & set(loads(c["group_ids"])):
                out.append(c)
        return out

    def comments_post(self, ctx: Ctx, obj_id: str):
        st = self.store
        data = ctx.json()
        group_ids = data.get("group_ids")
        if not group_ids or not isinstance(group_ids, list):
            group_ids = [st.public_group_id()]
        else:
            try:
                group_ids = [int(g) for g in group_ids]
            except (TypeError, ValueError):
                raise ApiError(400, f"Cannot find one or more groups with IDs: {group_ids}") from None
            if set(st.existing_group_ids(group_ids)) != set(group_ids):
                raise ApiError(400, f"Cannot find one or more groups with IDs: {group_ids}")
        group_ids = sorted(set(group_ids))
        text, channel = data.get("text"), data.get("channel")
        att_name = att_body = None
        att = data.get("attachment")
        if isinstance(att, dict):
            att_name, att_body = att.get("name"), att.get("body")
            if isinstance(att_body, str) and att_body.startswith("data:") and "," in att_body:
                att_body = att_body.split(",", 1)[1]
        text_s = None if text is None else str(text)
        for c in st.q("SELECT * FROM comments WHERE obj_id = ? AND author_id = ? AND bot = 1", (obj_id, ctx.user["id"])):
            if (c["text"] == text_s and c["channel"] == channel and c["attachment_name"] == att_name
                    and c["attachment_bytes"] == att_body and loads(c["group_ids"]) == group_ids):
                return self.ok({"comment_id": c["id"], "message": "Same comment already exists."})
        if st.obj(obj_id) is None:
            raise ApiError(400, f"Error posting comment for sources {obj_id}: (psycopg2.errors.ForeignKeyViolation)"
                                ' insert or update on table "comments" violates foreign key constraint'
                                ' "comments_obj_id_fkey"')
        if text_s is None:
            raise ApiError(400, f"Error posting comment for sources {obj_id}: (psycopg2.errors.NotNullViolation)"
                                ' null value in column "text" of relation "comments" violates not-null constraint')
        now = utcnow()
        cur = st.x("INSERT INTO comments (obj_id, text, author_id, bot, origin, channel, attachment_name,"
                   " attachment_bytes, group_ids, created_at, modified) VALUES (?,?,?,1,?,?,?,?,?,?,?)",
                   (obj_id, text_s, ctx.user["id"], data.get("origin"), channel, att_name, att_body,
                    dumps(group_ids), now, now))
        return self.ok({"comment_id": cur.lastrowid})

    def _comment_out(self, c) -> dict:
        return {**self.store.comment_dict(c), "resourceType": "sources",
                "author": self.store.user_dict(self.store.user(c["author_id"]))}

    def comments_get(self, ctx: Ctx, obj_id: str):
        rows = self._visible_comments(ctx, obj_id, ctx.arg("channel"))
        text = ctx.arg("text")
        if text:
            rows = [c for c in rows if text.lower() in c["text"].lower()]
        return self.ok([self._comment_out(c) for c in rows])

    def comment_one(self, ctx: Ctx, obj_id: str, comment_id: str):
        cid = _int_arg("comment_id", comment_id)
        c = self.store.q1("SELECT * FROM comments WHERE id = ?", (cid,))
        if c is None or c["id"] not in [r["id"] for r in self._visible_comments(ctx, c["obj_id"], None, True)]:
            raise ApiError(403, "Could not find any accessible comments.")
        if c["obj_id"] != obj_id:
            raise ApiError(400, f"Comment resource ID does not match resource ID given in path ({obj_id})")
        return self.ok(self._comment_out(c))

    # ---- annotations ------------------------------------------------------------------------------
    def _visible_annotations(self, ctx: Ctx, obj_id: str) -> list:
        acc = set(ctx.accessible())
        return [a for a in self.store.q("SELECT * FROM annotations WHERE obj_id = ? ORDER BY id", (obj_id,))
                if ctx.admin or a["author_id"] == ctx.user["id"] or acc & set(loads(a["group_ids"]))]

    def _check_groups(self, group_ids: list[int]) -> None:
        if set(self.store.existing_group_ids(group_ids)) != set(group_ids):
            raise ApiError(400, f"Cannot find one or more groups with IDs: {group_ids}")

    @staticmethod
    def _duplicate_annotation(obj_id: str, origin: str) -> ApiError:
        return ApiError(400, "Annotation already exists: (psycopg2.errors.UniqueViolation) duplicate key value "
                             'violates unique constraint "annotations_obj_id_origin_key"\n'
                             f"DETAIL:  Key (obj_id, origin)=({obj_id}, {origin}) already exists.")

    def annotations_post(self, ctx: Ctx, obj_id: str):
        st = self.store
        body = _pydantic(AnnotationPost, ctx.json())
        group_ids = ctx.accessible() if body.group_ids is None else list(dict.fromkeys(body.group_ids))
        self._check_groups(group_ids)
        if st.obj(obj_id) is None:
            raise ApiError(404, f"Obj {obj_id} not found")
        if st.q1("SELECT 1 FROM annotations WHERE obj_id = ? AND origin = ?", (obj_id, body.origin)):
            raise self._duplicate_annotation(obj_id, body.origin)
        now = utcnow()
        cur = st.x("INSERT INTO annotations (obj_id, origin, data, author_id, group_ids, created_at, modified)"
                   " VALUES (?,?,?,?,?,?,?)",
                   (obj_id, body.origin, dumps(body.data), ctx.user["id"], dumps(sorted(group_ids)), now, now))
        return self.ok({"annotation_id": cur.lastrowid})

    def annotations_get(self, ctx: Ctx, obj_id: str):
        return self.ok([self.store.annotation_dict(a) for a in self._visible_annotations(ctx, obj_id)])

    def _annotation_for_update(self, ctx: Ctx, obj_id: str, annotation_id: str):
        aid = _int_arg("annotation_id", annotation_id)
        a = self.store.q1("SELECT * FROM annotations WHERE id = ?", (aid,))
        if a is None or not (ctx.admin or a["author_id"] == ctx.user["id"]):
            raise ApiError(403, "Could not find any accessible annotations.")
        if a["obj_id"] != obj_id:
            raise ApiError(400, f"Annotation resource ID does not match resource ID given in path ({obj_id})")
        return a

    def annotation_one(self, ctx: Ctx, obj_id: str, annotation_id: str):
        aid = _int_arg("annotation_id", annotation_id)
        a = self.store.q1("SELECT * FROM annotations WHERE id = ?", (aid,))
        if a is None or a["id"] not in [r["id"] for r in self._visible_annotations(ctx, a["obj_id"])]:
            raise ApiError(403, "Could not find any accessible annotations.")
        if a["obj_id"] != obj_id:
            raise ApiError(400, f"Annotation resource ID does not match resource ID given in path ({obj_id})")
        return self.ok(self.store.annotation_dict(a))

    def annotation_put(self, ctx: Ctx, obj_id: str, annotation_id: str):
        st = self.store
        a = self._annotation_for_update(ctx, obj_id, annotation_id)
        body = _pydantic(AnnotationPut, ctx.json())
        origin, data, group_ids = a["origin"], loads(a["data"]), loads(a["group_ids"])
        if body.group_ids is not None:
            group_ids = sorted(set(body.group_ids))
            self._check_groups(group_ids)
        if body.origin is not None and body.origin != origin:
            if st.q1("SELECT 1 FROM annotations WHERE obj_id = ? AND origin = ?", (obj_id, body.origin)):
                raise self._duplicate_annotation(obj_id, body.origin)
            origin = body.origin
        if body.data is not None:
            data = body.data
        st.x("UPDATE annotations SET origin = ?, data = ?, group_ids = ?, modified = ? WHERE id = ?",
             (origin, dumps(data), dumps(group_ids), utcnow(), a["id"]))
        return self.ok()

    def annotation_delete(self, ctx: Ctx, obj_id: str, annotation_id: str):
        a = self._annotation_for_update(ctx, obj_id, annotation_id)
        self.store.x("DELETE FROM annotations WHERE id = ?", (a["id"],))
        return self.ok()

    # ---- follow-up requests -----------------------------------------------------------------------
    def _facility_mode(self, allocation_id: int, obj_id: str) -> str:
        rule = self.store.q1("SELECT mode FROM facility_rules WHERE allocation_id = ? AND obj_id = ?",
                             (allocation_id, obj_id))
        if rule:
            return rule["mode"]
        a = self.store.allocation(allocation_id)
        return a["facility"] if a else "ok"

    def _facility_call(self, req_id: int, action: str) -> None:
        """Run the SEDM queue call for `action` (submit/update/delete): sets the status or raises _Fail."""
        st = self.store
        r = st.q1("SELECT * FROM followup_requests WHERE id = ?", (req_id,))
        inst = st.instrument_dict(st.allocation(r["allocation_id"])["instrument_id"]) or {}
        mode = self._facility_mode(r["allocation_id"], r["obj_id"])
        payload = loads(r["payload"]) or {}
        if inst.get("api_classname") == "SEDMAPI":
            if mode == "active" and action in ("update", "delete"):
                raise _Fail(f"Cannot {'edit' if action == 'update' else 'delete'} an active request. "
                            "Data is being taken.")
            if action != "delete":
                for key in ("observation_type", "end_date", "start_date", "priority"):
                    if key not in payload:
                        raise _Fail(repr(key))
                if payload["observation_type"] == "Mix 'n Match" and "observation_choices" not in payload:
                    raise _Fail("'observation_choices'")
        if mode == "fail":
            raise _Fail(FAIL_MESSAGE)
        if action == "delete":
            status = "deleted"
        else:
            status = f"rejected: {REJECT_BODY}" if mode == "reject" else "submitted"
        st.x("UPDATE followup_requests SET status = ?, modified = ? WHERE id = ?", (status, utcnow(), req_id))

    def _visible_request(self, ctx: Ctx, r) -> bool:
        a = self.store.allocation(r["allocation_id"])
        return ctx.admin or (a is not None and a["group_id"] in ctx.accessible())

    def _updatable_request(self, ctx: Ctx, req_id: int):
        r = self.store.q1("SELECT * FROM followup_requests WHERE id = ?", (req_id,))
        if r is None or not (self._visible_request(ctx, r) or r["requester_id"] == ctx.user["id"]):
            return None
        return r

    def _check_constraints(self, ctx: Ctx, data: dict, c: dict) -> None:
        """post_followup_request constraints; a skip raises _Fail('... not submitting request ...')."""
        st = self.store
        acc = set(ctx.accessible())

        def visible_sources(where: str, params: list) -> list:
            return [s for s in st.q(f"SELECT * FROM sources WHERE {where}", params)
                    if ctx.admin or s["group_id"] in acc]

        obj_id = data["obj_id"]
        if len(c.get("source_group_ids") or []) > 0:
            gids = c["source_group_ids"]
            marks = ",".join("?" * len(gids))
            found = visible_sources(f"obj_id = ? AND active = 1 AND group_id IN ({marks})", [obj_id, *gids])
            if len(found) != len(gids):
                raise _Fail("There is no source for one or more of the source_group_ids specified as a constraint,"
                            " not submitting request.")
        radius = c.get("radius", 0.5) / 3600
        obj = st.obj(obj_id)
        if obj is None:
            raise _Fail(f"Could not find source with ID {obj_id}.")
        near = st.objs_within(obj["ra"], obj["dec"], radius)
        near_ids = [o["id"] for o in near]
        if c.get("not_if_duplicates", False):
            alloc_ids = set([data["allocation_id"]] + [int(i) for i in c.get("ignore_allocation_ids") or []])
            for r in st.q("SELECT * FROM followup_requests ORDER BY id"):
                s = r["status"].lower()
                if (r["allocation_id"] in alloc_ids and ("submitted" in s or "completed" in s)
                        and r["obj_id"] in near_ids and self._visible_request(ctx, r)):
                    if r["allocation_id"] == data["allocation_id"]:
                        raise _Fail("There is already a follow-up request for this source and allocation, not "
                                    "submitting request.")
                    raise _Fail("There is already a follow-up request for this source and one of the "
                                "ignore_allocation_ids, not submitting request.")
        if len(c.get("ignore_source_group_ids") or []) > 0:
            gids = c["ignore_source_group_ids"]
            for oid in near_ids:
                marks = ",".join("?" * len(gids))
                if visible_sources(f"obj_id = ? AND active = 1 AND group_id IN ({marks})", [oid, *gids]):
                    raise _Fail("There is a source for one or more of the ignore_source_group_ids specified as a "
                                "constraint, not submitting request.")
        if c.get("not_if_classified", False) and any(st.classifications(oid) for oid in near_ids):
            raise _Fail("Source has already been classified, not submitting request (as per constraint).")
        if c.get("not_if_spectra_exist", False) and any((st.flags(oid) or {"spectra": 0})["spectra"]
                                                          for oid in near_ids):
            raise _Fail("Source has already been observed spectroscopically, not submitting request (as per "
                        "constraint).")
        if c.get("not_if_tns_classified", False) and any((o["tns_name"] or "").startswith("SN") for o in near):
            raise _Fail(f"Source within {radius} arcsec has already been classified in TNS, not submitting "
                        "request (as per constraint).")
        hours = c.get("not_if_tns_reported")
        if isinstance(hours, (int, float)) and not isinstance(hours, bool):
            for o in near:
                info = loads(o["data"]).get("tns_info")
                if not o["tns_name"] or not info:
                    continue
                try:
                    if isinstance(info, str):
                        info = json.loads(info)
                    phot = info.get("photometry", [])
                    if phot and all(isinstance(p, dict) and isinstance(p.get("jd"), (int, float, str)) for p in phot):
                        jd = max(float(p["jd"]) for p in phot)
                        when = datetime(1858, 11, 17) + timedelta(days=jd - 2400000.5)
                    else:
                        when = _parse_date(str(info.get("discoverydate")))
                except Exception:
                    continue
                delta = (datetime.utcnow() - when).total_seconds() / 3600
                if delta > float(hours):
                    raise _Fail(f"A Source within {radius} arcsec ({o['id']}) has already been reported to TNS "
                                f"{delta} hours ago, not submitting request (as per constraint).")

    def _run_default_followups(self, ctx: Ctx) -> None:
        """DefaultFollowupRequest (SP models/followup_request.py:378-459): a new Source row matching a
        default request's source_filter (group_id, `name` regex on the obj id, `origin`) makes the server
        post that follow-up request itself, unless a non-deleted request for (obj, allocation) exists.
        Real SkyPortal does this in a background thread; here it is done before the response is sent."""
        st = self.store
        for obj_id, gid in ctx.inserted_sources:
            o = st.obj(obj_id)
            for row in st.q("SELECT * FROM default_followups ORDER BY id"):
                dfr = loads(row["data"])
                flt = dfr.get("source_filter") or {}
                if flt.get("group_id") is not None and int(flt["group_id"]) != gid:
                    continue
                if flt.get("name") and not re.search(flt["name"], obj_id):
                    continue
                if flt.get("origin") and loads(o["data"]).get("origin") != flt["origin"]:
                    continue
                alloc = int(dfr["allocation_id"])
                if st.q1("SELECT 1 FROM followup_requests WHERE obj_id = ? AND allocation_id = ? AND "
                         "status != 'deleted'", (obj_id, alloc)):
                    continue
                requester = st.user(dfr.get("requester_id")) or ctx.user
                sub = Ctx(ctx.sim, "POST", "/api/followup_request", {}, ctx.headers, b"")
                sub.user = requester
                now = datetime.utcnow()
                payload = {**(dfr.get("payload") or {}), "start_date": str(now),
                           "end_date": str(now + timedelta(days=float(dfr.get("validity_days", 7))))}
                constraints = dict(dfr.get("constraints") or {}) or None
                if constraints is not None:
                    constraints.setdefault("radius", 0.5)
                data = {"obj_id": obj_id, "allocation_id": alloc, "payload": payload,
                        "target_group_ids": dfr.get("target_group_ids") or []}
                try:
                    result = self._post_followup(sub, data, constraints)
                except (_Fail, ApiError):
                    st.commit()
                    continue
                st.commit()
                if dfr.get("comment"):
                    pr = payload.get("priority")
                    text = f"{dfr['comment']} (priority: {pr})" if pr is not None else dfr["comment"]
                    stamp = utcnow()
                    st.x("INSERT INTO comments (obj_id, text, author_id, bot, origin, channel, attachment_name,"
                         " attachment_bytes, group_ids, created_at, modified) VALUES (?,?,?,1,NULL,NULL,NULL,NULL,?,?,?)",
                         (obj_id, text, requester["id"], dumps(sorted(set(data["target_group_ids"] or [gid]))),
                          stamp, stamp))
                ctx.sim.auto_followups.append({"obj_id": obj_id, "group_id": gid, **result})

    def followup_post(self, ctx: Ctx):
        st = self.store
        data = ctx.json()
        data.pop("refreshSource", None)
        data.pop("refreshRequests", None)
        try:
            data = _m_load(FOLLOWUP_POST_SCHEMA, data)
        except _Fail as e:
            raise ApiError(400, f"Invalid / missing parameters: {e}") from None
        constraint_keys = ("not_if_duplicates", "source_group_ids", "ignore_source_group_ids", "not_if_classified",
                           "not_if_spectra_exist", "not_if_tns_classified", "not_if_tns_reported",
                           "ignore_allocation_ids", "not_if_assignment_exists")
        constraints = {k: data.pop(k) for k in constraint_keys if k in data} or None
        radius = data.pop("radius", 0.5)
        if constraints is not None:
            constraints["radius"] = float(radius)
        try:
            return self.ok(self._post_followup(ctx, data, constraints))
        except _Fail as e:
            if "not submitting request" in str(e) and constraints:
                return self.ok({"id": None, "ignored": True, "message": str(e)})
            raise ApiError(400, f"Error submitting follow-up request: {e}") from None
        finally:
            st.commit()

    def _post_followup(self, ctx: Ctx, data: dict, constraints: dict | None) -> dict:
        st = self.store
        if constraints:
            self._check_constraints(ctx, data, constraints)
        a = self._readable_allocation(ctx, data["allocation_id"])
        if a is None:
            raise _Fail(f"Could not find allocation with ID {data['allocation_id']}.")
        payload = data.get("payload", {})
        ranges = loads(a["data"]).get("validity_ranges")
        if isinstance(ranges, list) and ranges:
            pl = payload if isinstance(payload, dict) else {}
            start_s, end_s = pl.get("start_date"), pl.get("end_date")
            start = _parse_date(str(start_s)) if start_s else datetime.utcnow()
            for rng in ranges:
                if not rng.get("start_date") or not rng.get("end_date"):
                    raise _Fail("Validity ranges must have both start_date and end_date defined.")
                lo, hi = _parse_date(str(rng["start_date"])), _parse_date(str(rng["end_date"]))
                if lo <= start <= hi and (end_s is None or lo <= _parse_date(str(end_s)) <= hi):
                    break
            else:
                raise _Fail(f"{'Provided dates are' if start_s else 'Current date is'} outside allowed validity "
                            "ranges.")
        inst = st.instrument_dict(a["instrument_id"])
        if inst is None:
            raise _Fail(f"Could not find instrument for allocation {a['id']}.")
        if inst.get("api_classname") is None:
            raise _Fail("Instrument has no remote API.")
        target_groups = st.existing_group_ids(list(dict.fromkeys(data.get("target_group_ids") or [])))
        if inst["api_classname"] == "SEDMAPI":
            if not isinstance(payload, dict):
                raise _Fail(f"'{type(payload).__name__}' object has no attribute 'get'")
            payload = sedm_prepare_payload(payload)
            err = schema_error(payload, sedm_form_schema())
            if err is not None:
                raise _Fail(str(err))
        if st.obj(data["obj_id"]) is None:
            raise _Fail('(psycopg2.errors.ForeignKeyViolation) insert or update on table "followuprequests" '
                        'violates foreign key constraint "followuprequests_obj_id_fkey"')
        now = utcnow()
        cur = st.x("INSERT INTO followup_requests (obj_id, allocation_id, requester_id, last_modified_by_id,"
                   " payload, status, comment, target_group_ids, created_at, modified)"
                   " VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (data["obj_id"], a["id"], ctx.user["id"], ctx.user["id"], dumps(payload), "pending submission",
                    None, dumps(target_groups), now, now))
        req_id = cur.lastrowid
        st.commit()  # committed as "pending submission" before submit() (refreshSource)
        try:
            self._facility_call(req_id, "submit")
        except _Fail as e:
            st.x("UPDATE followup_requests SET status = ?, modified = ? WHERE id = ?",
                 (f"failed to submit: {e}", utcnow(), req_id))
            raise
        r = st.q1("SELECT status FROM followup_requests WHERE id = ?", (req_id,))
        return {"id": req_id, "request_status": r["status"]}

    def followup_list(self, ctx: Ctx):
        st = self.store
        sort_by, order = ctx.arg("sortBy", "created_at"), ctx.arg("sortOrder", "asc")
        if sort_by not in ("created_at", "modified", "status", "obj"):
            raise ApiError(400, "Invalid sortBy value.")
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid sortOrder value.")
        p, n = _page(ctx, 100, MAX_FOLLOWUP_REQUESTS)
        requesters = ctx.arg("requesters")
        if requesters:
            try:
                requesters = [int(x) for x in str(requesters).split(",") if x.strip()]
            except ValueError:
                raise ApiError(400, "requesters must be a comma seperated string list or list of integers") from None
            if any(st.user(u) is None for u in requesters):
                raise ApiError(400, "One or more of the requesters specified does not exist.")
        alloc_id = ctx.arg("allocationID")
        if alloc_id is not None:
            try:
                alloc_id = int(alloc_id)
            except ValueError:
                raise ApiError(400, "Allocation ID must be an integer.") from None
            if self._readable_allocation(ctx, alloc_id) is None:
                raise ApiError(400, "Allocation ID does not exist or is not accessible.")
        rows = [r for r in st.q("SELECT * FROM followup_requests ORDER BY id") if self._visible_request(ctx, r)]
        source_id = ctx.arg("sourceID")
        if source_id:
            rows = [r for r in rows if source_id.strip() in r["obj_id"]]
        if alloc_id is not None:
            rows = [r for r in rows if r["allocation_id"] == alloc_id]
        elif ctx.arg("instrumentID"):
            inst = str(ctx.arg("instrumentID")).strip()
            rows = [r for r in rows if str(st.allocation(r["allocation_id"])["instrument_id"]) == inst]
        status = ctx.arg("status")
        if status:
            rows = [r for r in rows if status.strip().lower() in r["status"].lower()]
        if requesters:
            rows = [r for r in rows if r["requester_id"] in requesters]
        for name, cmp in (("startDate", lambda r, d: r["created_at"] >= d), ("endDate", lambda r, d: r["created_at"] <= d)):
            if ctx.arg(name):
                d = _parse_date(ctx.arg(name)).isoformat()
                rows = [r for r in rows if cmp(r, d)]
        for name, key, ge in (("observationStartDate", "start_date", True), ("observationEndDate", "end_date", False)):
            if ctx.arg(name):
                bound = _parse_date(ctx.arg(name))
                kept = []
                for r in rows:
                    v = (loads(r["payload"]) or {}).get(key)
                    try:
                        dv = _parse_date(str(v))
                    except ApiError:
                        continue
                    if (dv >= bound) if ge else (dv <= bound):
                        kept.append(r)
                rows = kept
        threshold = ctx.arg("priorityThreshold")
        if threshold:
            thr = float(threshold)
            rows = [r for r in rows if isinstance((loads(r["payload"]) or {}).get("priority"), (int, float))
                    and loads(r["payload"])["priority"] >= thr]
        key = {"created_at": "created_at", "modified": "modified", "status": "status", "obj": "obj_id"}[sort_by]
        rows.sort(key=lambda r: (r[key], r["id"]), reverse=order == "desc")
        page = rows[(p - 1) * n: p * n]
        return self.ok({"followup_requests": [st.followup_dict(r) for r in page], "totalMatches": len(rows),
                        "pageNumber": p, "numPerPage": n})

    def followup_one(self, ctx: Ctx, request_id: str):
        rid = _int_arg("followup_request_id", request_id)
        r = self.store.q1("SELECT * FROM followup_requests WHERE id = ?", (rid,))
        if r is None or not self._visible_request(ctx, r):
            raise ApiError(400, "Could not retrieve followup request.")
        d = self.store.followup_dict(r)
        if d["obj"] is not None:
            d["obj"]["thumbnails"] = []
        d.update({"transactions": [], "transaction_requests": []})
        return self.ok(d)

    def followup_put(self, ctx: Ctx, request_id: str):
        st = self.store
        rid = _int_arg("request_id", request_id)
        r = self._updatable_request(ctx, rid)
        if r is None:
            raise ApiError(400, f"Missing FollowUpRequest with id {rid}")
        data = ctx.json()
        data.pop("refreshSource", None)
        data.pop("refreshRequests", None)
        now = utcnow()
        if "status" in data:  # mode A: every key set verbatim, no validation, no facility call
            for k in ("status", "comment"):
                if k in data:
                    st.x(f"UPDATE followup_requests SET {k} = ? WHERE id = ?",
                         (None if data[k] is None else str(data[k]), rid))
            if "payload" in data:
                st.x("UPDATE followup_requests SET payload = ? WHERE id = ?", (dumps(data["payload"]), rid))
            st.x("UPDATE followup_requests SET last_modified_by_id = ?, modified = ? WHERE id = ?",
                 (ctx.user["id"], now, rid))
            return self.ok()
        try:
            data = _m_load(FOLLOWUP_POST_SCHEMA, data)
        except _Fail as e:
            raise ApiError(400, f"Invalid / missing parameters: {e}") from None
        existing = r["status"].lower()
        resubmit = "failed to submit" in existing or "rejected" in existing
        inst = st.instrument_dict(st.allocation(r["allocation_id"])["instrument_id"]) or {}
        if not resubmit and inst.get("api_classname") != "SEDMAPI":
            raise ApiError(400, "Cannot update requests on this instrument.")
        if "payload" not in data:
            raise ApiError(500, "'payload'")
        if st.obj(data["obj_id"]) is None or st.allocation(data["allocation_id"]) is None:
            what = "obj_id" if st.obj(data["obj_id"]) is None else "allocation_id"
            raise ApiError(400, f"Failed to {'submit' if resubmit else 'update'} follow-up request: "
                                f"(psycopg2.errors.ForeignKeyViolation) insert or update on table "
                                f'"followuprequests" violates foreign key constraint "followuprequests_{what}_fkey"')
        payload = data["payload"]
        if inst.get("api_classname") == "SEDMAPI" and isinstance(payload, dict):
            payload = sedm_prepare_payload(payload, loads(r["payload"]) or {})
        st.begin()
        try:
            if "target_group_ids" in data:
                st.x("UPDATE followup_requests SET target_group_ids = ? WHERE id = ?",
                     (dumps(st.existing_group_ids(list(dict.fromkeys(data["target_group_ids"])))), rid))
            st.x("UPDATE followup_requests SET obj_id = ?, allocation_id = ?, payload = ?, status = ?,"
                 " last_modified_by_id = ?, modified = ? WHERE id = ?",
                 (data["obj_id"], data["allocation_id"], dumps(payload), data["status"], ctx.user["id"], now, rid))
            self._facility_call(rid, "submit" if resubmit else "update")
        except _Fail as e:
            st.rollback()
            raise ApiError(400, f"Failed to {'submit' if resubmit else 'update'} follow-up request: {e}") from None
        st.commit()
        return self.ok()

    def followup_delete(self, ctx: Ctx, request_id: str):
        st = self.store
        ctx.json()
        rid = _int_arg("request_id", request_id)
        r = self._updatable_request(ctx, rid)
        if r is None:
            raise ApiError(400, f"Missing FollowUpRequest with id {rid}")
        inst = st.instrument_dict(st.allocation(r["allocation_id"])["instrument_id"]) or {}
        if inst.get("api_classname") != "SEDMAPI":
            raise ApiError(400, "Cannot delete requests on this instrument.")
        st.begin()
        try:
            st.x("UPDATE followup_requests SET last_modified_by_id = ? WHERE id = ?", (ctx.user["id"], rid))
            self._facility_call(rid, "delete")
        except _Fail as e:
            st.rollback()
            raise ApiError(400, f"Failed to delete follow-up request: {e}") from None
        st.commit()
        return self.ok()

    def followup_comment_put(self, ctx: Ctx, request_id: str):
        data = ctx.json()
        comment = str(data.get("comment")).strip()
        if comment in ("", "None"):
            comment = None
        rid = _int_arg("followup_request_id", request_id)
        r = self._updatable_request(ctx, rid)
        if r is None:
            raise ApiError(400, f"Followup request {rid} not found.")
        self.store.x("UPDATE followup_requests SET comment = ?, modified = ? WHERE id = ?", (comment, utcnow(), rid))
        return self.ok({"id": rid})


# ------------------------------------------------------------------------------------------------
# HTTP server
# ------------------------------------------------------------------------------------------------

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

    def version_string(self) -> str:
        return "nginx (skyportal-sim)"

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _serve(self, method: str) -> None:
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

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_HEAD(self):
        self._serve("HEAD")

    def do_OPTIONS(self):
        self._serve("OPTIONS")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class SkyPortalSim:
    """A local SkyPortal/Fritz on loopback. See the module docstring and the report in the tests."""

    def __init__(self, seed=None, db_path: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None, verbose: bool = False):
        self.store = Store(seed, db_path)
        self.faults = faults if faults is not None else Faults()
        self.host, self.port, self.verbose = host, port, verbose
        self.api = SkyPortalApi(self)
        self.requests: list[dict] = []
        self.auto_followups: list[dict] = []  # requests posted by DefaultFollowupRequest matching
        self._req_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
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
        self._server = _Server((self.host, self.port), _Handler)
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
            self.store.x("UPDATE followup_requests SET status = ?, modified = ? WHERE id = ?",
                         (status, utcnow(), request_id))

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
        ctx = Ctx(self, method, path, query, headers, raw, uri)
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


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------

def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the `skyportal` subcommand (wired by the lead as `btsbot sim skyportal`)."""
    p = subparsers.add_parser(
        "skyportal",
        help="run a local SkyPortal/Fritz stand-in (test/demo tool, loopback by default)",
        description="Run a local SkyPortal/Fritz stand-in implementing the API the bot uses (sources, "
                    "source_groups, comments, annotations, follow-up requests to a simulated SEDM). It is a "
                    "test/demo tool: it binds to 127.0.0.1 by default, its tokens are published in its seed, "
                    "and it must never be exposed. Stops on SIGTERM/SIGINT.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; 0 picks a free one)")
    p.add_argument("--seed", metavar="FILE", default=None, help="seed YAML (default: the packaged seed)")
    p.add_argument("--db", metavar="PATH", default=None,
                   help="SQLite file to keep state across restarts (default: in memory)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request, milliseconds")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 500/503")
    p.add_argument("--throttle-rate", type=float, default=0.0, help="fraction answered 429 (nginx HTML)")
    p.add_argument("--timeout-rate", type=float, default=0.0, help="fraction that hang before processing")
    p.add_argument("--hang-s", type=float, default=30.0, help="how long a timeout fault hangs (default 30)")
    p.add_argument("--fault-seed", type=int, default=None, help="random seed of the fault rates")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=_cli_run)
    return p


def _cli_run(args: argparse.Namespace) -> int:
    faults = Faults(latency_s=args.latency_ms / 1000.0, error_rate=args.error_rate,
                    throttle_rate=args.throttle_rate, timeout_rate=args.timeout_rate, hang_s=args.hang_s,
                    seed=args.fault_seed)
    try:
        sim = SkyPortalSim(seed=args.seed, db_path=args.db, host=args.host, port=args.port, faults=faults,
                           verbose=args.verbose)
        url = sim.start()
    except (OSError, ValueError) as e:
        print(f"skyportal sim: cannot start: {e}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"skyportal sim: WARNING bound to {args.host}, not loopback; its tokens are public",
              file=sys.stderr)
    done = threading.Event()

    def _stop(signum, frame):
        done.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    print(f"SkyPortal sim ready at {url} token {sim.token}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.sim.skyportal [options]`: the same as `btsbot sim skyportal [options]`."""
    parser = argparse.ArgumentParser(prog="python -m bot.sim.skyportal")
    sub = parser.add_subparsers(dest="cmd")
    register_cli(sub)
    args = parser.parse_args(["skyportal", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
