"""Where the fp32 ONNX conversion of a model lives in the cache, and whether it comes from the installed
artifact (its sha256 is recorded beside it at conversion, `bot.scoring.convert`)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.artifacts import Artifact, ArtifactError, artifact_dir

ONNX_FILE = "model.onnx"


def onnx_path(art: Artifact, cache: Path) -> Path:
    return artifact_dir(art, cache) / ONNX_FILE


def check_conversion(art: Artifact, cache: Path) -> None:
    """The ONNX file must come from the installed artifact (its sha256 is recorded at conversion)."""
    path = onnx_path(art, cache)
    meta = path.with_suffix(".json")
    try:
        source = json.loads(meta.read_text()).get("source_sha256")
    except (OSError, ValueError):
        source = None
    if not path.is_file() or source != art.sha256:
        raise ArtifactError(f"no ONNX conversion of {art.label} in {path.parent}: run `btsbot models convert`")
