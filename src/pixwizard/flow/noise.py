"""Per-item noise: every sample's noise comes from its own generator, so an item's output does
not depend on what else is in the batch."""

from __future__ import annotations

import torch


def item_generators(seeds: list[int], device="cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def noise_like(shape: tuple[int, ...], generators: list[torch.Generator], device="cpu",
               dtype=torch.float32) -> torch.Tensor:
    """[B, ...] standard normal noise, item i drawn from generators[i]."""
    if len(generators) != shape[0]:
        raise ValueError(f"need one generator per item: {len(generators)} for batch {shape[0]}")
    return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generators])
