"""Scoring alert files from disk (`btsbot score`): every input gets a row, in input order.

Files are read and scored in chunks, so memory stays bounded however many files are given; one
unreadable file or unscorable alert never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from bot.alert_files import find_alert_files, read_alert_file
from bot.scoring.scorer import Scorer

COLUMNS = ("source", "objectId", "candid", "jd", "magpsf", "score", "new_drb", "status")


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

    def as_dict(self) -> dict:
        return {c: getattr(self, c) for c in COLUMNS}


def _flush(scorer: Scorer, pending: list[tuple[str, dict | None, str | None]]) -> list[Row]:
    alerts = [a for _, a, err in pending if err is None]
    results = iter(scorer.score(alerts)) if alerts else iter(())
    rows = []
    for source, _, err in pending:
        if err is not None:
            rows.append(Row(source, status=f"unreadable: {err}"))
            continue
        r = next(results)
        rows.append(Row(source, r.objectId, r.candid, r.jd, r.magpsf, r.score, r.features.get("new_drb"), r.status))
    return rows


def score_paths(
    scorer: Scorer, inputs: Iterable[str], chunk: int = 512, on_file: Callable[[], None] = lambda: None
) -> Iterator[Row]:
    """Rows for every alert in `inputs` (files and directories searched recursively for *.avro)."""
    pending: list[tuple[str, dict | None, str | None]] = []
    for path in find_alert_files(inputs):
        f = read_alert_file(path)
        if f.error:
            pending.append((path, None, f.error))
        else:
            pending.extend((path, a, None) for a in f.alerts)
        on_file()
        if len(pending) >= chunk:
            yield from _flush(scorer, pending)
            pending = []
    if pending:
        yield from _flush(scorer, pending)
