"""Device and precision choices made once: bf16 autocast only where the hardware runs it natively.

On CPUs without AVX512-BF16 or AMX, PyTorch emulates bf16 matmuls and they run ~100x slower than
float32 (measured on an AVX2-only 2-core machine: 1.2 vs 92 GFLOP/s), so ``auto`` picks float32
there and bf16 on CUDA or on CPUs that advertise ``avx512_bf16`` / ``amx_bf16``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when present, else CPU; a clear error for an unusable device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def use_bf16(device: torch.device, precision: Precision = "auto") -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def autocast(device: torch.device, precision: Precision = "auto"):
    """bf16 autocast where :func:`use_bf16` says so, otherwise a no-op context."""
    if use_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
