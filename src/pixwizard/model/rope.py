"""2D rotary position embedding for image tokens (DESIGN section 3).

Half of each head's dimensions encode the token's row, half its column (theta 1e4). Past the
training token count, NTK-aware scaling raises theta so that the lowest frequencies stretch to
the new extent instead of extrapolating. Rotation pairs are adjacent channels (2i, 2i+1).
"""

from __future__ import annotations

import math

import torch


def ntk_theta(theta: float, axis_dim: int, tokens: int, train_tokens: int) -> float:
    """NTK-aware base: theta * s ** (d / (d - 2)), s = per-side scale factor beyond training size."""
    if tokens <= train_tokens or axis_dim <= 2:
        return theta
    s = math.sqrt(tokens / train_tokens)
    return theta * s ** (axis_dim / (axis_dim - 2))


def rope_2d(rows: int, cols: int, head_dim: int, theta: float = 1e4, train_tokens: int | None = None,
            device=None, as_real: bool = False) -> torch.Tensor:
    """Complex rotations [rows*cols, head_dim // 2] (complex64) for a row-major grid of tokens, or with
    ``as_real`` the same numbers as float32 (cos, sin) pairs [rows*cols, head_dim // 2, 2] (what the
    model uses: no complex tensors in the graph, so ``torch.compile`` can fuse the rotation)."""
    if head_dim % 4:
        raise ValueError(f"head_dim must be a multiple of 4 for 2D RoPE, got {head_dim}")
    axis_dim = head_dim // 2
    if train_tokens is not None:
        theta = ntk_theta(theta, axis_dim, rows * cols, train_tokens)
    inv = 1.0 / theta ** (torch.arange(0, axis_dim, 2, device=device, dtype=torch.float64) / axis_dim)
    r = torch.arange(rows, device=device, dtype=torch.float64)
    c = torch.arange(cols, device=device, dtype=torch.float64)
    ang_r = torch.outer(r, inv)  # [rows, axis_dim/2]
    ang_c = torch.outer(c, inv)  # [cols, axis_dim/2]
    ang = torch.cat([ang_r[:, None, :].expand(rows, cols, -1), ang_c[None, :, :].expand(rows, cols, -1)], dim=-1)
    ang = ang.reshape(rows * cols, axis_dim)
    if as_real:  # polar(1, a) is exactly (cos a, sin a): the same float32 values as the complex form
        return torch.stack((torch.cos(ang), torch.sin(ang)), dim=-1).to(torch.float32)
    return torch.polar(torch.ones_like(ang), ang).to(torch.complex64)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, N, D] by rotations [N, D/2] (or [B, 1, N, D/2]) over adjacent channel pairs
    (2i, 2i+1): complex, or real (cos, sin) pairs with a trailing 2 (:func:`rope_2d` ``as_real``).
    Computed in float32 as the complex product (a + ib)(c + id), returned in x's dtype."""
    if freqs.is_complex():
        cos, sin = freqs.real, freqs.imag
    else:
        cos, sin = freqs[..., 0], freqs[..., 1]
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).to(x.dtype)
