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


# Sampling evaluates the network only at t < 1 (the last point of the grid is never fed to it), so
# there the x-to-velocity conversion uses the exact denominator ``1 - t``; this floor only keeps a
# hand-made grid that reaches t = 1 finite. With it, an Euler step from t to 1 lands exactly on the
# prediction, whatever the number of steps (a floor of the training ``t_eps`` stopped short of it
# above 1 / t_eps steps).
SAMPLING_T_EPS = 1e-6


def velocity_from_x(x1_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_eps: float) -> torch.Tensor:
    """Velocity implied by a clean-data prediction: ``(x1_hat - x_t) / (1 - t)``, the denominator
    clamped at ``t_eps`` (training: ``FlowConfig.t_eps``; sampling: :data:`SAMPLING_T_EPS`)."""
    return (x1_hat - x_t) / _bcast((1 - t).clamp_min(t_eps), x_t)


def x_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Clean-data estimate implied by a velocity: ``x_t + (1 - t) * v``."""
    return x_t + _bcast(1 - t, x_t) * v


def _check_prediction(prediction: str) -> None:
    if prediction not in ("velocity", "x"):
        raise ValueError(f"unknown prediction target {prediction!r}; use 'velocity' or 'x'")


def to_velocity(prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_eps: float) -> torch.Tensor:
    """The network output as a velocity, whatever it predicts (``"velocity"`` or ``"x"``)."""
    _check_prediction(prediction)
    return out if prediction == "velocity" else velocity_from_x(out, x_t, t, t_eps)


def sampling_velocity(prediction: str, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The network output as the velocity the samplers integrate: x-predictions are converted with
    the exact ``1 - t`` (floored at :data:`SAMPLING_T_EPS` only), not the training ``t_eps``."""
    return to_velocity(prediction, out, x_t, t, SAMPLING_T_EPS)


def training_target(prediction: str, x0: torch.Tensor, x1: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                    t_eps: float) -> torch.Tensor:
    """The velocity the loss compares :func:`to_velocity` of the output with.

    Velocity prediction: ``x1 - x0``. x-prediction: the data ``x1`` put through the same clamped
    conversion as the output, ``(x1 - x_t) / max(1 - t, t_eps)``. That equals ``x1 - x0`` for
    ``t <= 1 - t_eps``; above it, the unclamped ``x1 - x0`` would put the loss minimum at
    ``x_t + t_eps (x1 - x0)`` instead of at ``x1``. With both sides clamped the loss is
    ``|x1_hat - x1|^2 / max(1 - t, t_eps)^2`` for every t, zero at the exact ``x1``."""
    _check_prediction(prediction)
    return target_velocity(x0, x1) if prediction == "velocity" else velocity_from_x(x1, x_t, t, t_eps)
