"""One writer per journal: an advisory `flock` on a lock file beside the journal.

The writer (`btsbot run`, `run --once`, the demo) holds an exclusive `fcntl.flock` on `<journal>.lock`
for as long as its runtime is open, and writes who it is into the file (pid, host, since when). A
second writer finds the lock taken and refuses to start, naming the holder. The kernel releases a
flock when its process dies, however it dies, so a lock left by a killed bot never blocks the next
start: the file still names the dead holder, and the new writer logs that it took the lock over.
Readers (`journal`, `backtest`, `report`) never take the lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)


class JournalLocked(RuntimeError):
    """Another live process holds the journal's writer lock."""


def lock_path(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + ".lock")


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"


class WriterLock:
    """The exclusive writer lock of one journal; `acquire()` raises JournalLocked if another holds it."""

    def __init__(self, journal_path: str | os.PathLike):
        self.journal_path = Path(journal_path)
        self.path = lock_path(self.journal_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _read(self, fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            data = json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> "WriterLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise JournalLocked(f"journal {self.journal_path} is in use by another btsbot writer "
                                f"({_describe(holder)}; lock file {self.path})") from None
        except BaseException:
            os.close(fd)
            raise
        stale = self._read(fd)
        if stale.get("pid"):
            log.warning("took over the journal lock of a writer that is gone (%s)", _describe(stale))
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder and unlock (a clean stop leaves an empty lock file: nothing to take over)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def acquire_writer_lock(journal_path: str | os.PathLike) -> WriterLock | None:
    """The writer lock of a journal on disk, acquired (None for an in-memory journal)."""
    if str(journal_path) == ":memory:":
        return None
    return WriterLock(journal_path).acquire()
