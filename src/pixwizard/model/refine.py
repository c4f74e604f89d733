"""A light convolutional refinement of the clean-target estimate, against the patch grid.

The DiT predicts each ``p x p`` patch from its own token, so errors are constant-ish per patch and
show as a grid of blocks. This head looks across patch borders in pixel (latent) space:
``x1_hat + conv3x3(SiLU(conv3x3([x1_hat, condition, t])))``, with the last convolution
zero-initialised, so a model grown with it (``model.refine`` > 0) starts as exactly the model
without it and ``--init`` from a file without the head loads (its tensors keep their init).
Not in the paper; measured in docs/recipe-study.md.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RefineHead(nn.Module):
    def __init__(self, channels: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2 * channels + 1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x1_hat: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x1_hat.shape
        dtype = self.conv1.weight.dtype if not torch.is_autocast_enabled(x1_hat.device.type) else x1_hat.dtype
        tt = t.reshape(-1, 1, 1, 1).expand(b, 1, h, w)
        inp = torch.cat([x1_hat, cond.to(x1_hat.dtype), tt.to(x1_hat.dtype)], dim=1).to(dtype)
        delta = self.conv2(F.silu(self.conv1(inp)))
        return x1_hat + delta.to(x1_hat.dtype)
