"""The flow-matching training loss (a pure function of the network output)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixwizard.flow.path import to_velocity, training_target


def flow_loss(out: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
              prediction: str, t_eps: float = 0.05, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-item velocity MSE [B]. For x-prediction the output and the data ``x1`` both go through the
    same clamped conversion to a velocity (x-prediction with a velocity loss; see
    :func:`~pixwizard.flow.path.training_target`). ``mask`` [B, 1, H, W] restricts the mean to valid pixels;
    non-negative weights (:func:`change_weights`) make it a weighted mean."""
    x_t = x_t.float()
    target = training_target(prediction, x0.float(), x1.float(), x_t, t, t_eps)
    err = (to_velocity(prediction, out.float(), x_t, t, t_eps) - target) ** 2
    if mask is None:
        return err.flatten(1).mean(1)
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


def change_weights(inputs: torch.Tensor, targets: torch.Tensor, size: tuple[int, int],
                   weight: float | torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-position loss weights [B, 1, *size]: ``1 + weight`` where the target differs from the input
    (mean absolute difference over channels above ``threshold``, images in [-1, 1]), 1 elsewhere.

    Where a task changes a small part of the image (a box, an overlay, an edited object) the plain
    mean is dominated by pixels the input already gets right, so copying the input is a cheap
    minimum; weighting the changed positions up makes the change count. Where everything changes
    (control, dense maps, text-to-image) the weights are uniform and the loss is the plain mean; many
    restoration tasks change only their edges at the default threshold and are reweighted too. ``size``
    is the latent's spatial size: a position counts as changed when any pixel it covers changed.
    ``weight`` is one number or one per item [B] (0 keeps an item's plain mean)."""
    if inputs.shape != targets.shape:
        raise ValueError(f"change weights need inputs and targets of one shape, got {tuple(inputs.shape)} "
                         f"and {tuple(targets.shape)}")
    w = torch.as_tensor(weight, dtype=torch.float32, device=inputs.device).reshape(-1)
    if bool((w < 0).any()) or threshold < 0:
        raise ValueError(f"change weight and threshold must be >= 0, got {weight} and {threshold}")
    if w.numel() not in (1, inputs.shape[0]):
        raise ValueError(f"change weights: {w.numel()} weights for {inputs.shape[0]} items")
    diff = (targets.float() - inputs.float()).abs().mean(1, keepdim=True)
    if tuple(diff.shape[-2:]) != tuple(size):
        diff = F.adaptive_max_pool2d(diff, size)
    return 1.0 + w.view(-1, 1, 1, 1) * (diff > threshold).float()
