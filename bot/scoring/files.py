"""Scoring alert files from disk (`btsbot score`): every input gets a row, in input order.

Files are read and scored in chunks, so memory stays bounded however many files are given; one
unreadable file or unscorable alert never stops the others.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from bot.alert_files import find_alert_files, read_alert_file
from bot.scoring.scorer import Scorer

COLUMNS = ("source", "objectId", "candid", "jd", "magpsf", "score", "new_drb", "status", "precision")


@dataclass
class Row:
    source: str
    objectId: str | None = None
    candid: int | None = None
    jd: float | None = None
    magpsf: float | None = None
    score: float | None = None
    new_drb: float | None = None
    status: str = "ok"
    precision: str | None = None

    def as_dict(self) -> dict:
        return {c: getattr(self, c) for c in COLUMNS}


def _load(scorer: Scorer, paths: list[str]):
    """Read a chunk of files and stage its alerts (runs in the reader thread)."""
    pending: list[tuple[str, str | None]] = []
    alerts: list[dict] = []
    for path in paths:
        f = read_alert_file(path)
        if f.error:
            pending.append((path, f.error))
        else:
            pending.extend((path, None) for _ in f.alerts)
            alerts.extend(f.alerts)
    return pending, scorer.stage(alerts)


def _rows(scorer: Scorer, pending, staged) -> list[Row]:
    results = iter(scorer.finish(staged))
    rows = []
    for source, err in pending:
        if err is not None:
            rows.append(Row(source, status=f"unreadable: {err}"))
            continue
        r = next(results)
        rows.append(Row(source, r.objectId, r.candid, r.jd, r.magpsf, r.score, r.features.get("new_drb"), r.status,
                        r.precision))
    return rows


def _chunks(paths: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_paths(
    scorer: Scorer, inputs: Iterable[str], chunk: int = 128, on_file: Callable[[], None] = lambda: None
) -> Iterator[Row]:
    """Rows for every alert in `inputs` (files and directories searched recursively for *.avro).

    A reader thread reads and stages the next chunk of files while the models score this one, so
    decoding overlaps inference; at most two chunks are in memory.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="btsbot-reader") as pool:
        chunks = _chunks(find_alert_files(inputs), chunk)
        ahead = None
        for paths in chunks:
            loaded = pool.submit(_load, scorer, paths)
            if ahead is not None:
                yield from _emit(scorer, *ahead, on_file)
            ahead = (*loaded.result(), len(paths))
        if ahead is not None:
            yield from _emit(scorer, *ahead, on_file)


def _emit(scorer, pending, staged, n_files, on_file) -> Iterator[Row]:
    rows = _rows(scorer, pending, staged)
    for _ in range(n_files):
        on_file()
    yield from rows
