"""`btsbot models convert` (bot/scoring/convert.py) on a cache whose fp32 conversions are current: the int8
model is built only when its calibration data (the example data) is installed; without it the conversion
says so and leaves no int8 model, and `auto` then picks the fp32 ONNX backend (`bot/scoring/cpu.py`)."""

from __future__ import annotations

import shutil

from bot.artifacts import get_artifact
from bot.scoring.convert import convert_to_onnx
from bot.scoring.int8 import int8_installed, int8_path


def test_without_the_example_data_no_int8_model_is_built(model_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(model_cache / "models", cache / "models")  # `models pull --no-example-data`, converted
    int8_path(get_artifact("models", "btsbot"), cache).unlink()
    said = []
    out = convert_to_onnx(cache, log=said.append)
    assert len(out) == 2 and all(p.suffix == ".onnx" and p.is_file() for p in out)  # the fp32 conversions
    assert any("ONNX conversion up to date" in s for s in said)
    assert said[-1].startswith("int8 model not built: its calibration data (") and "--no-example-data" in said[-1]
    assert not int8_path(get_artifact("models", "btsbot"), cache).exists() and not int8_installed(cache)


def test_with_the_example_data_the_int8_model_is_current(model_cache):
    said = []
    out = convert_to_onnx(model_cache, log=said.append)
    assert out[-1] == int8_path(get_artifact("models", "btsbot"), model_cache) and int8_installed(model_cache)
    assert said[-1].endswith("int8 model up to date")
