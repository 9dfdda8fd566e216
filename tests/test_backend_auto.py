"""`models.backend: auto`: int8 where the CPU has VNNI (and the int8 model is installed), fp32 otherwise;
`btsbot score` keeps the fp32 model as trained; the choice and its reason are said."""

from __future__ import annotations

from bot.cli import main
from bot.config import load_config
from bot.scoring.cpu import choose_backend, cpu_flags


def test_auto_takes_int8_exactly_where_the_cpu_has_vnni(tmp_path):
    assert choose_backend("auto", {"avx2", "avx512f", "avx512_vnni"})[0] == "onnx-int8"
    assert choose_backend("auto", {"avx2", "avx_vnni"})[0] == "onnx-int8"  # client CPUs: AVX-VNNI
    backend, why = choose_backend("auto", {"avx2", "fma"})
    assert backend == "onnx" and "no VNNI" in why
    backend, why = choose_backend("auto", {"avx512_vnni"}, int8_installed=False)
    assert backend == "onnx" and "not installed" in why
    assert choose_backend("auto", {"avx512_vnni"}, for_scores=True)[0] == "onnx"  # btsbot score: exact scores
    assert choose_backend("tensorflow", {"avx512_vnni"}) == ("tensorflow", "as configured (models.backend)")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "absent") == set()


def test_auto_is_the_default_and_models_status_says_what_it_chooses_here(capsys, model_cache):
    assert load_config(None, env={}).models.backend == "auto"
    main(["models", "status", "--cache-dir", str(model_cache)])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("backend"))
    expected = "onnx-int8" if cpu_flags() & {"avx512_vnni", "avx_vnni"} else "onnx"
    assert f"models.backend auto -> {expected} for run/demo" in line and "avx512_vnni=" in line
