"""The flow-matching training loss (a pure function of the network output)."""

from __future__ import annotations

import torch

from pixwizard.flow.path import target_velocity, to_velocity


def flow_loss(out: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
              prediction: str, t_eps: float = 0.05, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item velocity MSE [B]. For x-prediction the output is turned into a velocity first
    (x-prediction with a velocity loss). ``mask`` [B, 1, H, W] restricts the mean to valid pixels."""
    err = (to_velocity(prediction, out.float(), x_t.float(), t, t_eps) - target_velocity(x0, x1).float()) ** 2
    if mask is None:
        return err.flatten(1).mean(1)
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
