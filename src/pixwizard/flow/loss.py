"""The flow-matching training loss (a pure function of the network output)."""

from __future__ import annotations

import torch

from pixwizard.flow.path import to_velocity, training_target


def flow_loss(out: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
              prediction: str, t_eps: float = 0.05, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item velocity MSE [B]. For x-prediction the output and the data ``x1`` both go through the
    same clamped conversion to a velocity (x-prediction with a velocity loss; see
    :func:`~pixwizard.flow.path.training_target`). ``mask`` [B, 1, H, W] restricts the mean to valid pixels."""
    x_t = x_t.float()
    target = training_target(prediction, x0.float(), x1.float(), x_t, t, t_eps)
    err = (to_velocity(prediction, out.float(), x_t, t, t_eps) - target) ** 2
    if mask is None:
        return err.flatten(1).mean(1)
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
