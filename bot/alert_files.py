"""Reading ZTF alert packets (avro files) from disk.

An avro file may hold one alert (as ZTF distributes them) or many. Reading never raises for a bad
file: it yields an `AlertFile` whose `error` says why it could not be read, so that one bad file
never stops the others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import fastavro


@dataclass
class AlertFile:
    """What was read from one path: its alerts, or why none could be read."""

    path: str
    alerts: list[dict] = field(default_factory=list)
    error: str | None = None


def find_alert_files(inputs: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Expand inputs (files and directories, searched recursively for *.avro) in a stable order.

    A path that does not exist is yielded as is, so that the reader reports it.
    """
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for sub in sorted(p.rglob("*.avro")):
                if sub.is_file():
                    yield str(sub)
        else:
            yield str(p)


def read_alert_file(path: str | os.PathLike) -> AlertFile:
    """Read every alert record in one avro file."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            alerts = list(fastavro.reader(fh))
    except FileNotFoundError:
        return AlertFile(path, error="no such file")
    except IsADirectoryError:
        return AlertFile(path, error="is a directory")
    except PermissionError:
        return AlertFile(path, error="permission denied")
    except Exception as exc:  # fastavro raises many types for corrupt input
        return AlertFile(path, error=f"not a readable avro file ({type(exc).__name__}: {exc})".strip())
    if not alerts:
        return AlertFile(path, error="avro file holds no records")
    bad = [i for i, a in enumerate(alerts) if not isinstance(a, dict)]
    if bad:
        return AlertFile(path, error=f"record {bad[0]} is not an alert record")
    return AlertFile(path, alerts=alerts)


def iter_alert_files(inputs: Iterable[str | os.PathLike]) -> Iterator[AlertFile]:
    for path in find_alert_files(inputs):
        yield read_alert_file(path)
