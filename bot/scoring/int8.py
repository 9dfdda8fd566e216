"""The int8 BTSbot model in the cache: where it is, and whether it was built (`bot.scoring.quantize`)
from the installed artifact, its fp32 ONNX and the calibration data. It is cached beside the fp32
conversion with the sha256 of each, recorded in its `.json`; a model whose record differs is not used.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.artifacts import Artifact, ArtifactError, artifact_dir, get_artifact, installed_path, sha256_of
from bot.example_data import EXAMPLE_ARTIFACTS
from bot.scoring.onnx_files import check_conversion, onnx_path

INT8_FILE = "model.int8.onnx"


def int8_path(art: Artifact, cache: Path) -> Path:
    return artifact_dir(art, cache) / INT8_FILE


def meta_path(art: Artifact, cache: Path) -> Path:
    return int8_path(art, cache).with_suffix(".json")


def calibration_artifacts() -> list[Artifact]:
    """The example data the int8 model is calibrated on (`bot.scoring.quantize`)."""
    return [get_artifact("example_data", name) for name in EXAMPLE_ARTIFACTS]


def expected_meta(cache: Path) -> dict:
    art = get_artifact("models", "btsbot")
    check_conversion(art, cache)
    calib = calibration_artifacts()
    for c in calib:
        installed_path(c, cache)  # raises naming `btsbot models pull`
    return {"source_sha256": art.sha256, "fp32_onnx_sha256": sha256_of(onnx_path(art, cache)),
            "calibration": {c.name: c.sha256 for c in calib}}


def int8_installed(cache: Path) -> bool:
    """Whether check_int8 would find the int8 model (for `models.backend: auto`)."""
    try:
        check_int8(cache)
    except ArtifactError:
        return False
    return True


def check_int8(cache: Path) -> Path:
    """The int8 model's path if it was built from the installed fp32 model; raises ArtifactError."""
    art = get_artifact("models", "btsbot")
    path, meta = int8_path(art, cache), meta_path(art, cache)
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        recorded = {}
    expected = expected_meta(cache)
    if not path.is_file() or any(recorded.get(k) != v for k, v in expected.items()):
        raise ArtifactError(f"no int8 model of {art.label} in {path.parent}: run `btsbot models convert`")
    return path
