"""The stand-in's query runner: a `POST /api/queries` body executed on mongomock, with Kowalski's checks and
answers (contract: docs/contracts.md, KW 2.3).

In the order Kowalski does it (kowalski/api/handlers/query.py at 51d0078): the body is validated by the
pydantic 1.10 `Query` model, whose root validator `check_query` (query.py:170-442) raises ValueError for a
bad specification -- pydantic turns those into `ValidationError: 1 validation error for Query ...` --, and
KeyError or AttributeError, which pydantic lets through as they are; then `max_time_ms` (query.py:786-791);
then the Mongo call, with the kwargs left after `validate_kwargs`, whose pymongo 4.8 argument checks raise
TypeError (e.g. `limit must be an instance of int`, pymongo/cursor.py:223-226). The handler answers each
exception as `400 "<ExceptionClass>: <text>"` (Kowalski's error_middleware, middlewares.py:34-42).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

import mongomock

QUERY_TYPES = ("cone_search", "count_documents", "estimated_document_count", "find", "find_one",
               "aggregate", "info", "near", "drop", "skymap")  # query.py:26-37
SUPPORTED = ("count_documents", "estimated_document_count", "find", "find_one", "aggregate", "info")
INFO_COMMANDS = ("catalog_names", "catalog_info", "index_info", "db_info")  # query.py:38-43
SUPPORTED_INFO = ("catalog_names", "index_info")
FORBIDDEN_STAGES = {"$unionWith", "$out", "$merge"}  # query.py:44
SYSTEM_COLLECTIONS = ("users", "filters", "queries")  # query.py:25: only the admin may query them


class ValidationError(ValueError):
    """pydantic 1.10's ValidationError of Kowalski's `Query` model, with its text:
    `1 validation error for Query\\n__root__\\n  Protected collection (type=value_error)`."""

    def __init__(self, errors: list[tuple[str, str, str]]) -> None:  # (loc, msg, type) each
        self.errors = errors
        n = len(errors)
        super().__init__(f"{n} validation error{'' if n == 1 else 's'} for Query\n"
                         + "\n".join(f"{loc}\n  {msg} (type={kind})" for loc, msg, kind in errors))


_PYDANTIC_CATCHES = {ValueError: "value_error", TypeError: "type_error", AssertionError: "assertion_error"}


def _literal(text: str):
    return ast.literal_eval(text.strip())  # ValueError -> a validation error; SyntaxError goes through


def _construct_filter(q: Mapping):
    """query.py:56-70."""
    value = q.get("filter")
    if not isinstance(value, (str, Mapping)):
        raise ValueError("Unsupported filter specification")
    value = _literal(value) if isinstance(value, str) else value
    if not isinstance(value, Mapping):  # (Kowalski lets pymongo refuse it; the stand-in refuses it here)
        raise ValueError("Unsupported filter specification")
    return value


def _construct_projection(q: Mapping):
    """query.py:72-89: none is {} (whole documents)."""
    value = q.get("projection")
    if value is None:
        return {}
    if not isinstance(value, (str, Mapping)):
        raise ValueError("Unsupported projection specification")
    value = _literal(value) if isinstance(value, str) else value
    if not isinstance(value, Mapping):
        raise ValueError("Unsupported projection specification")
    return value


def _check_query(query_type, q, kwargs, admin: bool) -> dict:
    """`Query.check_query` (query.py:170-442) for what the stand-in serves; returns the preprocessed query."""
    if query_type not in QUERY_TYPES:
        raise KeyError(f"query_type {query_type} not in {str(QUERY_TYPES)}")
    if kwargs is None:  # the kwargs field failed validation: `kwargs["comment"] = user` (query.py:181-182)
        raise TypeError("'NoneType' object does not support item assignment")
    if q.get("catalog") is not None:  # AttributeError on a query that is not a dict, as in Kowalski
        if q.get("catalog").strip() in SYSTEM_COLLECTIONS and not admin:
            raise ValueError("Protected collection")  # query.py:184-187
    if q.get("catalogs") is not None:
        for catalog in q.get("catalogs"):
            if catalog in SYSTEM_COLLECTIONS and not admin:
                raise ValueError("Protected collection")  # query.py:188-192
    q = dict(q)
    if query_type == "aggregate":  # query.py:194-217
        pipeline = q.get("pipeline")
        if not isinstance(pipeline, (str, Sequence)):
            raise ValueError("Unsupported pipeline specification")
        if isinstance(pipeline, str):
            pipeline = _literal(pipeline)
        if len(pipeline) == 0:
            raise ValueError("Pipeline must contain at least one stage")
        stages = {list(stage.keys())[0] for stage in pipeline}
        if stages & FORBIDDEN_STAGES:
            raise ValueError(f"Pipeline uses forbidden stages: {str(stages & FORBIDDEN_STAGES)}")
        q["pipeline"] = pipeline
    elif query_type in ("count_documents", "find_one"):  # query.py:281-287, 300-306
        q["filter"] = _construct_filter(q)
    elif query_type == "find":  # query.py:289-298
        q["filter"] = _construct_filter(q)
        q["projection"] = _construct_projection(q)
    elif query_type == "info" and q.get("command") not in INFO_COMMANDS:  # query.py:308-311
        raise KeyError(f"command {q.get('command')} not in {str(INFO_COMMANDS)}")
    return q


def validate(body: Mapping, admin: bool = True) -> tuple[str, dict, dict]:
    """`Query(**query_spec)` (query.py:783): (query_type, query, kwargs), or ValidationError / KeyError /
    AttributeError as pydantic 1.10 raises them. `admin`: the token's user is Kowalski's admin."""
    errors: list[tuple[str, str, str]] = []
    query_type = body.get("query_type")
    if isinstance(query_type, (int, float)) and not isinstance(query_type, str):
        query_type = str(query_type)  # pydantic 1's str coercion
    elif not isinstance(query_type, str):
        query_type = None  # a missing or invalid field: the root validator sees None and raises KeyError
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict):
        errors.append(("kwargs", "value is not a valid dict", "type_error.dict"))
        kwargs = None
    q = body.get("query")
    try:
        q = _check_query(query_type, q, kwargs, admin)
    except tuple(_PYDANTIC_CATCHES) as exc:  # pydantic collects these as errors of __root__
        kind = next(v for k, v in _PYDANTIC_CATCHES.items() if isinstance(exc, k))
        errors.append(("__root__", str(exc), kind))
    if errors:
        raise ValidationError(errors)
    return query_type, q, dict(kwargs)


def _max_time_ms(kwargs: dict) -> int:
    ms = kwargs.get("max_time_ms", 300000)
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 1:
        raise ValueError("max_time_ms must be int >= 1")
    return ms


def _cursor_args(kwargs: dict) -> None:
    """pymongo 4.8 `Cursor.__init__` (pymongo/cursor.py:223-226), which Kowalski's `find(..., **kwargs)` reaches."""
    if not isinstance(kwargs.get("skip", 0), int):
        raise TypeError("skip must be an instance of int")
    if not isinstance(kwargs.get("limit", 0), int):
        raise TypeError("limit must be an instance of int")


def run_query(db, body: dict, admin: bool = True):
    """Execute a /api/queries body on `db`; returns `data` (None: omit it). Raises on a bad query.
    `admin`: whether the request's user is Kowalski's admin (who alone may query users/filters/queries)."""
    try:
        return _run_query(db, body, admin)
    except ValueError as exc:  # mongomock's word for what a real server calls an OperationFailure
        if "mix including and excluding" in str(exc):
            raise mongomock.OperationFailure(f"Cannot mix inclusion and exclusion in projection: {exc}") from exc
        raise


def _run_query(db, body: dict, admin: bool):
    if not isinstance(body, dict):
        raise ValueError("query must be a JSON object")
    qt, q, kwargs = validate(body, admin)
    if qt not in SUPPORTED:
        raise NotImplementedError(f"query_type {qt} is not supported by the Kowalski simulator")
    ms = _max_time_ms(kwargs)
    if qt == "info":
        cmd = q.get("command")
        if cmd not in SUPPORTED_INFO:
            raise NotImplementedError(f"command {cmd} not supported by the Kowalski simulator")
        if cmd == "catalog_names":  # query.py:885-894: reverse-sorted, system collections left out
            return [c for c in sorted(db.list_collection_names(), reverse=True) if c not in SYSTEM_COLLECTIONS]
        return db[q["catalog"]].index_information()
    catalog = q.get("catalog")
    if not isinstance(catalog, str) or not catalog:
        raise ValueError("catalog not specified")
    if catalog not in db.list_collection_names():  # do not create it as a side effect
        return {"find": [], "aggregate": [], "count_documents": 0,
                "estimated_document_count": 0}.get(qt)
    coll = db[catalog]
    if qt == "estimated_document_count":
        return coll.estimated_document_count()
    if qt == "aggregate":
        return list(coll.aggregate(q["pipeline"], allowDiskUse=kwargs.get("allowDiskUse", True), maxTimeMS=ms))
    if qt == "count_documents":
        return coll.count_documents(q["filter"])
    if qt == "find_one":
        return coll.find_one(q["filter"])  # Kowalski ignores projection and sort here
    _cursor_args(kwargs)
    projection = q["projection"] or None  # query.py:825-848: an empty projection is not passed
    cursor = coll.find(q["filter"], projection, max_time_ms=ms)
    sort = kwargs.get("sort")
    if sort:
        cursor = cursor.sort(list(sort.items()) if isinstance(sort, dict) else [tuple(s) for s in sort])
    if kwargs.get("skip"):
        cursor = cursor.skip(kwargs["skip"])
    if kwargs.get("limit"):
        cursor = cursor.limit(kwargs["limit"])
    return list(cursor)
