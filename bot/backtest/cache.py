"""The score cache: scores by (candid, model version, preprocessing version), in SQLite in the cache dir.

A backtest over an archive scores each alert once; a second run, or a sweep, reads the scores back.
The preprocessing version names everything besides the model that changes a score: the version of
the triplet/feature code (`PREPROCESSING_VERSION`, bump it when bot/core/triplets.py or features.py
change what they compute), where new_drb comes from (braai or the alert), where the history of the
derived features comes from (the packet's prv_candidates or the broker) and, for scores that are not all
the fp32 model's, the precision rule (`int8>=0.4`: the int8 model, fp32 from that score up; see
`bot.scoring.scorer.Scorer`). Each cached score keeps its own precision.

The cache also remembers which candids each alert file held (by path, size and mtime), so a warm run
does not even decode the files whose alerts are all cached. Unscorable alerts are cached with their
status (they are as deterministic as scores).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Mapping

PREPROCESSING_VERSION = "1"
FIELDS = ("objectId", "jd", "score", "status", "magpsf", "peakmag_so_far", "age", "drb", "precision")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    candid         INTEGER NOT NULL,
    model_version  TEXT NOT NULL,
    preprocessing  TEXT NOT NULL,
    objectId       TEXT NOT NULL,
    jd             REAL NOT NULL,
    score          REAL,
    status         TEXT NOT NULL,
    magpsf         REAL,
    peakmag_so_far REAL,
    age            REAL,
    drb            REAL,
    precision      TEXT,              -- fp32 or int8: which model gave the score
    PRIMARY KEY (candid, model_version, preprocessing)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    candids  TEXT NOT NULL            -- JSON list of the candids the file held
);
"""


def preprocessing_key(drb_source: str, history: str, precision: str = "fp32") -> str:
    """The preprocessing version of a score: code version, new_drb source, history source (and the
    precision rule, when the scores are not all fp32)."""
    key = f"{PREPROCESSING_VERSION};drb={drb_source};history={history}"
    return key if precision == "fp32" else f"{key};precision={precision}"


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class ScoreCache:
    """`ScoreCache(path)`; ":memory:" for a throw-away cache."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)  # callers serialise
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(scores)")}
        if "precision" not in columns:  # a cache written before scores kept their precision (all fp32)
            with self._conn:
                self._conn.execute("ALTER TABLE scores ADD COLUMN precision TEXT")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, candids: Iterable[int], model_version: str, preprocessing: str) -> dict[int, dict]:
        """candid -> cached row (candid, model_version and FIELDS) for those cached."""
        wanted = sorted({int(c) for c in candids})
        out: dict[int, dict] = {}
        cols = ", ".join(FIELDS)
        for start in range(0, len(wanted), 900):
            chunk = wanted[start:start + 900]
            sql = (f"SELECT candid, {cols} FROM scores WHERE model_version = ? AND preprocessing = ? "
                   f"AND candid IN ({','.join('?' * len(chunk))})")
            for row in self._conn.execute(sql, [model_version, preprocessing, *chunk]):
                out[row[0]] = {"candid": row[0], "model_version": model_version, **dict(zip(FIELDS, row[1:]))}
        return out

    def candids(self, model_version: str, preprocessing: str) -> Iterator[int]:
        """Every candid cached for (model version, preprocessing), in candid order."""
        for row in self._conn.execute("SELECT candid FROM scores WHERE model_version = ? AND preprocessing = ? "
                                      "ORDER BY candid", (model_version, preprocessing)):
            yield row[0]

    def put(self, rows: Iterable[Mapping], model_version: str, preprocessing: str) -> int:
        params = [(int(r["candid"]), model_version, preprocessing, *(r.get(f) for f in FIELDS)) for r in rows]
        with self._conn:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO scores (candid, model_version, preprocessing, {', '.join(FIELDS)}) "
                f"VALUES ({','.join('?' * (3 + len(FIELDS)))})", params)
        return len(params)

    def file_candids(self, path: str) -> list[int] | None:
        """The candids `path` held when it was last read, if it has not changed since (size, mtime)."""
        st = _stat(path)
        row = self._conn.execute("SELECT size, mtime_ns, candids FROM files WHERE path = ?",
                                 (os.path.abspath(path),)).fetchone()
        if st is None or row is None or (row[0], row[1]) != st:
            return None
        return json.loads(row[2])

    def put_files(self, files: Mapping[str, list[int]]) -> None:
        params = []
        for path, candids in files.items():
            st = _stat(path)
            if st is not None:
                params.append((os.path.abspath(path), *st, json.dumps([int(c) for c in candids])))
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", params)

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM scores").fetchone()[0]
