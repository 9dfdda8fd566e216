"""`btsbot models convert`: the installed BTSbot SavedModel and braai h5 to ONNX with tf2onnx (fp32),
then the int8 BTSbot model quantized from that ONNX (`bot.scoring.quantize`). Everything lands beside the
artifacts in the cache, with the sha256 of what it was made from (`onnx_files`, `int8` check them)."""

from __future__ import annotations

import json
from pathlib import Path

from bot.artifacts import ArtifactError, get_artifact, installed_path
from bot.scoring.int8 import calibration_artifacts
from bot.scoring.onnx_files import check_conversion, onnx_path
from bot.scoring.quantize import build_int8
from bot.scoring.quiet import cache_env, quiet_stderr, tensorflow_env


def convert_to_onnx(cache: Path, force: bool = False, opset: int = 17, log=lambda msg: None) -> list[Path]:
    """Convert the installed BTSbot SavedModel and braai h5 to ONNX with tf2onnx, beside them in the cache."""
    out = []
    for name in ("btsbot", "braai"):
        art = get_artifact("models", name)
        source = installed_path(art, cache)
        dest = onnx_path(art, cache)
        if not force:
            try:
                check_conversion(art, cache)
                log(f"{art.label}: ONNX conversion up to date")
                out.append(dest)
                continue
            except ArtifactError:
                pass
        tensorflow_env(cache)
        tmp = dest.with_suffix(".onnx.tmp")
        with quiet_stderr(), cache_env(cache):
            version = _tf2onnx(name, source, tmp, opset)
        tmp.replace(dest)
        dest.with_suffix(".json").write_text(
            json.dumps({"source_sha256": art.sha256, "tf2onnx": version, "opset": opset})
        )
        log(f"{art.label}: converted to {dest}")
        out.append(dest)
    absent = [c.label for c in calibration_artifacts() if not _installed(c, cache)]
    if absent:  # the int8 model is calibrated on them: without them there is none (`auto` picks fp32 ONNX)
        log(f"int8 model not built: its calibration data ({', '.join(absent)}) is not installed; "
            "`btsbot models pull` (without --no-example-data) builds it")
        return out
    out.append(build_int8(cache, force=force, log=log))
    return out


def _installed(art, cache: Path) -> bool:
    try:
        installed_path(art, cache)
    except ArtifactError:
        return False
    return True


def _tf2onnx(name: str, source: Path, tmp: Path, opset: int) -> str:
    """One tf2onnx conversion (the SavedModel's serving signature, or the braai h5); the tf2onnx version."""
    import tensorflow as tf
    import tf2onnx

    if name == "btsbot":
        loaded = tf.saved_model.load(str(source))  # must stay referenced while tracing
        fn = loaded.signatures["serving_default"]
        spec = (
            tf.TensorSpec((None, 63, 63, 3), tf.float32, name="triplet"),
            tf.TensorSpec((None, 25), tf.float32, name="metadata"),
        )

        @tf.function(input_signature=spec)
        def serving(triplet, metadata):
            return fn(triplet=triplet, metadata=metadata)

        tf2onnx.convert.from_function(serving, input_signature=spec, opset=opset, output_path=str(tmp))
    else:
        import tf_keras

        model = tf_keras.models.load_model(str(source), compile=False)
        tf2onnx.convert.from_keras(model, opset=opset, output_path=str(tmp))
    return tf2onnx.__version__
