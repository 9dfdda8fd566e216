"""Model backends. TensorFlow is the reference (the SavedModel as shipped); ONNX Runtime runs the same
model converted locally with tf2onnx. Both take batches; heavy frameworks are imported only when a
backend of theirs is built, so the ONNX path never imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bot.artifacts import ArtifactError, get_artifact, installed_path
from bot.scoring.int8 import check_int8
from bot.scoring.onnx_files import check_conversion, onnx_path
from bot.scoring.quiet import cache_env, quiet_stderr, tensorflow_env

BACKENDS = ("onnx", "onnx-int8", "tensorflow")


class TensorFlowBTSbot:
    """BTSbot through the SavedModel's serving signature (what the Keras-2 model computes). `cache`: the
    btsbot cache, where TensorFlow's and matplotlib's per-user files go."""

    backend = "tensorflow"

    def __init__(self, saved_model_dir: Path, cache: Path):
        tensorflow_env(cache)
        try:
            with quiet_stderr(), cache_env(cache):  # TF imports matplotlib: its cache too
                import tensorflow as tf

                self._tf = tf
                self._loaded = tf.saved_model.load(str(saved_model_dir))  # keeps the variables alive
                self._fn = self._loaded.signatures["serving_default"]
        except ImportError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot load the BTSbot SavedModel at {saved_model_dir} ({type(exc).__name__}: {exc}); "
                "run `btsbot models pull --force`"
            ) from None

    def predict(self, triplets: np.ndarray, features: np.ndarray) -> np.ndarray:
        tf = self._tf
        out = self._fn(triplet=tf.constant(triplets, tf.float32), metadata=tf.constant(features, tf.float32))
        return out["fc_out"].numpy()[:, 0].astype(np.float64)


class TensorFlowBraai:
    backend = "tensorflow"

    def __init__(self, h5_path: Path, cache: Path):
        tensorflow_env(cache)
        try:
            with quiet_stderr(), cache_env(cache):
                import tf_keras

                self._model = tf_keras.models.load_model(str(h5_path), compile=False)
        except ImportError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot load braai from {h5_path} ({type(exc).__name__}: {exc}); run `btsbot models pull --force`"
            ) from None

    def predict(self, triplets: np.ndarray) -> np.ndarray:
        return self._model(triplets, training=False).numpy()[:, 0].astype(np.float64)


_ARENA: list = []  # the process' one ONNX Runtime CPU arena, registered by the first session


def _shared_arena(ort) -> None:
    """One CPU arena for every session of the process (BTSbot, braai, and with `onnx-int8` the int8 and
    the fp32 BTSbot): they run one after the other, so one arena sized for the largest batch serves them
    all instead of one arena each (272 -> 170 MiB for the three sessions at batch 64). It grows by what
    is requested (not by powers of two)."""
    if _ARENA:
        return
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))  # max 0 = no cap, kSameAsRequested
    _ARENA.append(info)


class _OnnxModel:
    backend = "onnx"
    precision = "fp32"

    def __init__(self, path: Path, cache: Path, threads: int = 0, precision: str = "fp32"):
        self.precision = precision
        if not path.is_file():
            raise ArtifactError(f"{path} is missing: run `btsbot models convert` (or `btsbot models pull`)")
        # importing onnxruntime (and its first session) writes its telemetry ids: inside the btsbot cache
        with cache_env(cache):
            import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads yield the CPU to the reader
        # no memory pattern: ORT would keep one block for all of a batch's activations at once, per session
        # (~70 MB for BTSbot and ~30 MB for braai at batch 64; see docs/performance.md); the arena still reuses
        # its buffers, and the kernels, hence the scores, are the same
        opts.enable_mem_pattern = False
        opts.add_session_config_entry("session.use_env_allocators", "1")
        try:
            with cache_env(cache):
                _shared_arena(ort)
                self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ArtifactError(f"cannot load {path} ({exc}); run `btsbot models convert --force`") from None
        self._inputs = [i.name for i in self._session.get_inputs()]


class OnnxBTSbot(_OnnxModel):
    def predict(self, triplets: np.ndarray, features: np.ndarray) -> np.ndarray:
        feeds = {"triplet": np.ascontiguousarray(triplets, np.float32), "metadata": np.ascontiguousarray(features, np.float32)}
        return self._session.run(None, feeds)[0][:, 0].astype(np.float64)


class OnnxBraai(_OnnxModel):
    def predict(self, triplets: np.ndarray) -> np.ndarray:
        feeds = {self._inputs[0]: np.ascontiguousarray(triplets, np.float32)}
        return self._session.run(None, feeds)[0][:, 0].astype(np.float64)


@dataclass(frozen=True)
class Backends:
    """The models a backend name loads: the BTSbot `model`, `braai`, and with `onnx-int8` (whose `model` is
    the int8 one) the fp32 BTSbot as `fp32_model`, which scores the alerts from the fp32 floor up
    (`Scorer`). The field names are `Scorer`'s parameters. It unpacks as `(model, braai)`, or
    `(model, braai, fp32_model)` when there is one, as the tuples `load_backends` used to return."""

    model: Any
    braai: Any
    fp32_model: Any = None

    def __iter__(self) -> Iterator[Any]:
        yield self.model
        yield self.braai
        if self.fp32_model is not None:
            yield self.fp32_model


def load_backends(backend: str, cache: Path, threads: int = 0) -> Backends:
    """The models of a backend name (`Backends`); raises ArtifactError naming what to run."""
    btsbot_art, braai_art = get_artifact("models", "btsbot"), get_artifact("models", "braai")
    saved_model, h5 = installed_path(btsbot_art, cache), installed_path(braai_art, cache)
    if backend == "tensorflow":
        return Backends(TensorFlowBTSbot(saved_model, cache), TensorFlowBraai(h5, cache))
    if backend == "onnx":
        for art in (btsbot_art, braai_art):
            check_conversion(art, cache)
        return Backends(OnnxBTSbot(onnx_path(btsbot_art, cache), cache, threads),
                        OnnxBraai(onnx_path(braai_art, cache), cache, threads))
    if backend == "onnx-int8":
        for art in (btsbot_art, braai_art):
            check_conversion(art, cache)
        return Backends(OnnxBTSbot(check_int8(cache), cache, threads, precision="int8"),
                        OnnxBraai(onnx_path(braai_art, cache), cache, threads),
                        fp32_model=OnnxBTSbot(onnx_path(btsbot_art, cache), cache, threads))
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
