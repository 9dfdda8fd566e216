"""Keeping TensorFlow's native start-up noise (CUDA/oneDNN/absl lines written straight to file
descriptor 2, e.g. `E0000 ... cuInit ... UNKNOWN ERROR (303)` on a machine without a GPU) off the
terminal, and its files (~/.keras) inside the btsbot cache."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def tensorflow_env(cache: Path | None = None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only: no cuInit probe
    if cache is not None:
        os.environ.setdefault("KERAS_HOME", str(Path(cache) / "keras"))


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Capture fd 2 (native libraries) and Python warnings-level logging; replay the capture on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        root.setLevel(logging.ERROR)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            capture.seek(0)
            os.write(2, capture.read()[-20000:])
            raise
        finally:
            root.setLevel(level)
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@contextmanager
def cache_env(cache: Path) -> Iterator[None]:
    """While libraries initialise, point their per-user caches into the btsbot cache: onnxruntime's
    telemetry ids (`$XDG_CACHE_HOME/Microsoft`, else ~/.cache/Microsoft) and matplotlib's font cache
    (imported by tf2onnx). Restored afterwards, so btsbot's own cache lookup is unchanged."""
    values = {"XDG_CACHE_HOME": str(Path(cache) / "lib-cache"), "MPLCONFIGDIR": str(Path(cache) / "lib-cache" / "matplotlib")}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
