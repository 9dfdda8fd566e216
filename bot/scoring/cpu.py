"""`models.backend: auto`: int8 where the CPU makes it fast, fp32 otherwise -- read from the CPU flags.

ONNX Runtime's int8 convolutions gain ~2x where the CPU has VNNI (AVX512-VNNI, or AVX-VNNI on client
CPUs) and ~1.3x on AVX2 alone (docs/performance.md: both measured). Decisions are the same either way
(the int8 path scores the alerts a policy could count in fp32), so `auto` takes int8 exactly where it pays: a VNNI
flag in /proc/cpuinfo, and the int8 model installed (`btsbot models pull` builds it). `btsbot score`
prints scores, not decisions: there `auto` is the fp32 model as trained.
"""

from __future__ import annotations

import os
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
SIMD_FLAGS = ("avx2", "avx512f", *VNNI_FLAGS)  # what the scoring backends' speed depends on


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux); empty where they cannot be read."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model(path: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux), "unknown" where it cannot be read."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.split(":")[0].strip() == "model name"), "unknown")


def cpu_marks(flags: set[str] | None = None) -> str:
    """`avx2=yes avx512f=yes avx512_vnni=no avx_vnni=no`: the flags named beside every performance figure."""
    flags = cpu_flags() if flags is None else flags
    return " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in SIMD_FLAGS)


def cpu_line() -> str:
    """`CPU: <model>, N cores; <cpu_marks>`, the first line of each benchmark."""
    return f"CPU: {cpu_model()}, {os.cpu_count()} cores; {cpu_marks()}"


def choose_backend(requested: str, flags: set[str] | None = None, int8_installed: bool = True,
                   for_scores: bool = False) -> tuple[str, str]:
    """(backend, why) for a configured backend; only `auto` is chosen here, any other name is kept."""
    if requested != "auto":
        return requested, "as configured (models.backend)"
    if for_scores:
        return "onnx", "auto: fp32, the model as trained (btsbot score prints scores; --backend onnx-int8 for speed)"
    flags = cpu_flags() if flags is None else flags
    vnni = [f for f in VNNI_FLAGS if f in flags]
    if not vnni:
        return "onnx", "auto: fp32, the CPU has no VNNI (int8 would gain ~1.3x only)"
    if not int8_installed:
        return "onnx", f"auto: fp32, the CPU has {vnni[0]} but the int8 model is not installed (btsbot models pull)"
    return "onnx-int8", f"auto: int8, the CPU has {vnni[0]} (~2x faster; decisions identical: scores from the fp32 floor up in fp32)"
