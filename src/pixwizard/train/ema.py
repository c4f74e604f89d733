"""Exponential moving average of the trainable parameters (the weights that get exported).

``ema = d * ema + (1 - d) * param`` after every optimiser step, in float32 whatever the training
precision. With ``warmup`` the decay after ``n`` updates is ``min(decay, (1 + n) / (10 + n))``,
so a short run's average is not dominated by the initialisation. Works on plain tensors and on
FSDP2's sharded DTensors (each rank averages its own shard).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    def continue_average(self) -> None:
        """Treat the current shadow as an average that is already under way (weights loaded from an
        exported model, which *is* an EMA): the warm-up is skipped, so the next updates use the full
        ``decay`` instead of starting over at 0.1 and forgetting the loaded average within a few
        steps. Done by advancing ``updates`` to where the warm-up reaches ``decay`` (kept on resume)."""
        if self.warmup and self.decay > 0.0:
            self.updates = max(self.updates, math.ceil((10.0 * self.decay - 1.0) / (1.0 - self.decay)))

    @torch.no_grad()
    def start_from(self, model: nn.Module) -> None:
        """Take ``model``'s weights (just loaded from an exported model file) as the average under way:
        copy them into the shadow, then :meth:`continue_average`."""
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].copy_(p.detach().float())
        self.continue_average()

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        shadow = [self.shadow[n] for n in self.names]
        current = [params[n].detach().float() for n in self.names]
        torch._foreach_lerp_(shadow, current, 1.0 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged weights into ``model`` (same parameter names)."""
        params = dict(model.named_parameters())
        for n in self.names:
            params[n].copy_(self.shadow[n].to(params[n].dtype))

    def state_dict(self) -> dict[str, object]:
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates}
