"""The stand-in's query runner: a `POST /api/queries` body executed on mongomock, with Kowalski's checks and
answers (contract: shared/reference/kowalski-api.md)."""

from __future__ import annotations

import ast

import mongomock

QUERY_TYPES = ("cone_search", "count_documents", "estimated_document_count", "find", "find_one",
               "aggregate", "info", "near", "drop", "skymap")
SUPPORTED = ("count_documents", "estimated_document_count", "find", "find_one", "aggregate", "info")
FORBIDDEN_STAGES = ("$unionWith", "$out", "$merge")


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


def run_query(db, body: dict):
    """Execute a /api/queries body on `db`; returns `data` (None: omit it). Raises on a bad query."""
    try:
        return _run_query(db, body)
    except ValueError as exc:  # mongomock's word for what a real server calls an OperationFailure
        if "mix including and excluding" in str(exc):
            raise mongomock.OperationFailure(f"Cannot mix inclusion and exclusion in projection: {exc}") from exc
        raise


def _run_query(db, body: dict):
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
            return sorted(db.list_collection_names(), reverse=True)
        if cmd == "index_info":
            return db[q["catalog"]].index_information()
        raise ValueError(f"command {cmd} not supported by the Kowalski simulator")
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
