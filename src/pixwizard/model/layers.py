"""Small building blocks of the DiT: RMSNorm, SwiGLU, timestep embedding, modulation."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, computed in float32 and cast back."""

    def __init__(self, dim: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        return F.rms_norm(x.float(), (x.shape[-1],), w, self.eps).to(x.dtype)


def modulate(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scale-only adaLN: ``x * (1 + scale)``; x [B, N, D], scale [B, D]."""
    return torch.addcmul(x, x, scale.unsqueeze(1))  # x + x * scale, one pass


def swiglu_hidden(dim: int, mult: float, multiple_of: int) -> int:
    hidden = int(mult * dim)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)``; w1 and w3 fused into one matmul."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w13(x).split(self.hidden, dim=-1)
        return self.w2(F.silu(a) * b)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features ``[cos(s t f_i), sin(s t f_i)]`` of t in [0, 1] -> MLP.

    ``scale`` s multiplies t before the sinusoid: 1000 (DiT's convention for integer diffusion
    steps) in our own presets, 1 for the released PixWizard checkpoint, whose embedder (like
    Lumina-Next's) takes t in [0, 1] as is (``ModelConfig.timestep_scale``)."""

    def __init__(self, out_dim: int, freq_dim: int = 256, scale: float = 1000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.scale = float(scale)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))
        nn.init.normal_(self.mlp[0].weight, std=0.02)
        nn.init.normal_(self.mlp[2].weight, std=0.02)

    def features(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = (t.float() * self.scale)[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(t).to(self.mlp[0].weight.dtype))


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
