"""The time convention, written once (DESIGN section 4).

``t`` in [0, 1]; ``t = 0`` is noise ``x0``, ``t = 1`` is data ``x1``;
``x_t = t * x1 + (1 - t) * x0``; the target velocity is ``v = x1 - x0``; sampling integrates
``dx/dt = v`` from 0 to 1.
"""

from __future__ import annotations

import torch


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point on the straight path at time t (t [B])."""
    tb = _bcast(t, x1)
    return tb * x1 + (1 - tb) * x0


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return x1 - x0


def velocity_from_x(x1_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_eps: float) -> torch.Tensor:
    """Velocity implied by a clean-data prediction: ``(x1_hat - x_t) / (1 - t)``, the denominator
    clamped at ``t_eps`` so the last step stays finite."""
    return (x1_hat - x_t) / _bcast((1 - t).clamp_min(t_eps), x_t)


def x_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Clean-data estimate implied by a velocity: ``x_t + (1 - t) * v``."""
    return x_t + _bcast(1 - t, x_t) * v


def to_velocity(prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_eps: float) -> torch.Tensor:
    """The network output as a velocity, whatever it predicts (``"velocity"`` or ``"x"``)."""
    if prediction == "velocity":
        return out
    if prediction == "x":
        return velocity_from_x(out, x_t, t, t_eps)
    raise ValueError(f"unknown prediction target {prediction!r}; use 'velocity' or 'x'")
