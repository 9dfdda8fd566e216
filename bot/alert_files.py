"""Reading ZTF alert packets (avro files) from disk.

An avro file may hold one alert (as ZTF distributes them) or many. Reading never raises for a bad
file: it yields an `AlertFile` whose `error` says why it could not be read, so that one bad file
never stops the others. A path with `://` is an fsspec URL (`s3://bucket/night/`, `file:///data/`…),
read through fsspec (`pip install "btsbot[dask]"`); local paths are read as they always were.
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
        if is_url(item):
            yield from _find_url(str(item))
            continue
        p = Path(item)
        if p.is_dir():
            for sub in sorted(p.rglob("*.avro")):
                if sub.is_file():
                    yield str(sub)
        else:
            yield str(p)


def is_url(item) -> bool:
    """An fsspec URL (`protocol://…`), not a local path."""
    return isinstance(item, str) and "://" in item


def _find_url(url: str) -> Iterator[str]:
    """The *.avro files under an fsspec URL (a directory, searched recursively, in the order of a local one),
    or the URL itself."""
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
        found = fs.find(root) if fs.isdir(root) else None
    except Exception:  # no fsspec, an unknown protocol, an unreachable store: the reader says why
        found = None
    if found is None:
        yield url
        return
    for sub in sorted((f for f in found if f.endswith(".avro")), key=lambda f: f.split("/")):
        yield fs.unstrip_protocol(sub)


def _open(path: str):
    if not is_url(path):
        return open(path, "rb")
    try:
        import fsspec
    except ImportError:
        raise _NoFsspec() from None
    return fsspec.open(path, "rb")


class _NoFsspec(Exception):
    pass


def read_alert_file(path: str | os.PathLike) -> AlertFile:
    """Read every alert record in one avro file."""
    path = str(path)
    try:
        with _open(path) as fh:
            alerts = list(fastavro.reader(fh))
    except _NoFsspec:
        return AlertFile(path, error='an fsspec URL needs fsspec: pip install "btsbot[dask]"')
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
