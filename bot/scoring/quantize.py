"""Building the int8 BTSbot model: ONNX Runtime static quantization of the convolution layers of the
fp32 ONNX (`btsbot models convert`, after the fp32 conversion).

QDQ format, per-channel int8 weights, uint8 activations, Conv nodes only: the metadata branch (inputs
spanning many orders of magnitude) and the dense head stay fp32 -- quantizing them makes every score
~0.5. Calibration is deterministic, on the README example alerts (triplets + features) that
`btsbot models pull` installs, staged by the scorer exactly as the fp32 pipeline stages an alert.
Where the result lives and how it is checked: `bot.scoring.int8`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bot.artifacts import ArtifactError, get_artifact
from bot.example_data import example_packets, installed_example
from bot.scoring.backends import OnnxBraai
from bot.scoring.int8 import INT8_FILE, check_int8, expected_meta, int8_path, meta_path
from bot.scoring.onnx_files import onnx_path
from bot.scoring.quiet import cache_env, quiet_stderr
from bot.scoring.scorer import Scorer


def calibration_inputs(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(triplets, features) of the README example alerts, as the fp32 pipeline computes them."""
    rows, trips = installed_example(cache)
    braai = OnnxBraai(onnx_path(get_artifact("models", "braai"), cache), cache)
    scorer = Scorer(None, braai)
    triplets, feats, _ = scorer.model_inputs(scorer.stage(example_packets(rows, trips)))
    return np.ascontiguousarray(triplets, np.float32), np.ascontiguousarray(feats, np.float32)


def build_int8(cache: Path, force: bool = False, log=lambda msg: None) -> Path:
    """Quantize the installed fp32 BTSbot ONNX (see the module docstring); returns the int8 model's path."""
    art = get_artifact("models", "btsbot")
    dest = int8_path(art, cache)
    if not force:
        try:
            check_int8(cache)
            log(f"{art.label}: int8 model up to date")
            return dest
        except ArtifactError:
            pass
    import onnx

    with cache_env(cache):  # importing onnxruntime writes its telemetry ids: inside the btsbot cache
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

    expected = expected_meta(cache)
    src = onnx_path(art, cache)
    convs = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv"]
    if not convs:
        raise ArtifactError(f"{src} has no Conv node to quantize")
    trips, feats = calibration_inputs(cache)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"triplet": trips[i : i + 8], "metadata": feats[i : i + 8]} for i in range(0, len(trips), 8)])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".int8-") as tmp:
        out = Path(tmp) / INT8_FILE
        cwd = os.getcwd()
        os.chdir(tmp)  # the calibrator writes its augmented model to the working directory
        try:
            with quiet_stderr(), cache_env(cache):  # onnxruntime's "consider pre-processing" warnings
                quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["Conv"], nodes_to_quantize=convs,
                                calibrate_method=CalibrationMethod.MinMax)
        finally:
            os.chdir(cwd)
        out.replace(dest)
    import onnxruntime

    meta_path(art, cache).write_text(json.dumps({**expected, "onnxruntime": onnxruntime.__version__,
                                                  "quantized_nodes": len(convs), "calibration_alerts": len(trips)}))
    log(f"{art.label}: int8 model (conv layers, calibrated on {len(trips)} example alerts) at {dest}")
    return dest
