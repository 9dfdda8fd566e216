"""Request-body checks of the SkyPortal stand-in, each in the style the real handler uses.

- pydantic models (the newer handlers: source_groups, annotations), failing as "Invalid/missing parameters: ...";
- marshmallow-like `load` with unknown=RAISE (follow-up requests, a new Obj), failing with marshmallow's
  error dict;
- the SEDM follow-up form (a JSON schema) and the small Draft 2020-12 validator that reproduces
  jsonschema's `best_match` message, plus SEDMAPI.prepare_payload.
"""

from __future__ import annotations

import math
import pprint
from datetime import datetime, timedelta
from textwrap import dedent
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.sim.skyportal.errors import ApiError, Fail
from bot.sim.skyportal.schema import OBJ_COLUMNS


def pydantic_load(model: type[BaseModel], data: dict) -> BaseModel:
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


def marshmallow_load(schema: list[tuple[str, str, bool, Any]], data: dict) -> dict:
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
        raise Fail(str(errors))
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


def obj_post_load(data: dict) -> dict:
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
        raise Fail(f"Invalid/missing parameters: {errors}")
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
