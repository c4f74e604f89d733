"""The official PixWizard sampler: three guidance branches, Euler on a fixed grid of time points.

Branches, as the original inference builds them (one batch per step, every branch fed the same x):
``full`` (the instruction, the condition latent, the semantic tokens), ``image`` (the empty text,
the condition, the semantic tokens) and ``null`` (the empty text, the *initial noise* as the
condition latent, zero semantic tokens). The guided velocity is
``v_null + wI (v_image - v_null) + wT (v_full - v_image)``; the original applies it to latent
channels 0-2 only (channel 3 follows the unguided ``full`` branch, a DiT inheritance), which
``guided_channels=3`` reproduces; ``None`` guides every channel (our default).
The time grid is ``points`` times ``linspace(0, 1)`` in float32, shifted by t / (t + s - s t).
"""

from __future__ import annotations

from typing import Callable

import torch

from pixwizard.flow.guidance import combine

BranchFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [3B,...], t [3B]) -> v [3B,...]


def official_time_grid(points: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """``points`` time points from 0 to 1 (``points - 1`` Euler steps), shifted like the original."""
    if points < 2:
        raise ValueError(f"need at least 2 time points, got {points}")
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float32, device=device)
    if shift != 1.0:
        t = t / (t + shift - shift * t)
    return t


def guide(v_full: torch.Tensor, v_image: torch.Tensor, v_null: torch.Tensor, text_scale: float,
          image_scale: float, guided_channels: int | None = None) -> torch.Tensor:
    """The three-branch guided velocity, on every channel or on the first ``guided_channels``."""
    v = combine({"full": v_full, "image": v_image, "null": v_null}, text_scale, image_scale)
    if guided_channels is None:
        return v
    return torch.cat([v[:, :guided_channels], v_full[:, guided_channels:]], dim=1)


def sample(branches: BranchFn, z: torch.Tensor, times: torch.Tensor, *, text_scale: float, image_scale: float,
           guided_channels: int | None = None, trajectory: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Euler from ``z`` (t = times[0]) to times[-1]; ``branches`` evaluates the three branches on
    ``x`` repeated 3 times. Appends every state to ``trajectory`` when given."""
    x = z
    if trajectory is not None:
        trajectory.append(x)
    n = z.shape[0]
    for a, b in zip(times[:-1], times[1:]):
        v = branches(x.repeat(3, *([1] * (x.ndim - 1))), a.expand(3 * n))
        v_full, v_image, v_null = v.split(n)
        x = x + (b - a) * guide(v_full, v_image, v_null, text_scale, image_scale, guided_channels)
        if trajectory is not None:
            trajectory.append(x)
    return x
