"""Condition dropout for classifier-free guidance (DESIGN section 4).

Each item draws one uniform number u: text only dropped if u < p_text, image only if
p_text <= u < p_text + p_image, both if the next p_both. (The original code inverted the image
coin and dropped the image ~95% of the time.) A dropped instruction becomes the empty string; a
dropped condition image becomes zeros (mid-grey in [-1, 1] pixel space, zeros in latent space).
"""

from __future__ import annotations

import torch

from pixwizard.config import FlowConfig


def draw_dropout(n: int, cfg: FlowConfig, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(drop_text [n] bool, drop_image [n] bool)."""
    u = torch.rand(n, generator=generator)
    a, b, c = cfg.drop_text, cfg.drop_text + cfg.drop_image, cfg.drop_text + cfg.drop_image + cfg.drop_both
    text_only, image_only, both = u < a, (u >= a) & (u < b), (u >= b) & (u < c)
    return text_only | both, image_only | both


def apply_dropout(instructions: list[str], cond: torch.Tensor, drop_text: torch.Tensor,
                  drop_image: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """The null instruction is ""; the null condition is zeros."""
    texts = ["" if d else s for s, d in zip(instructions, drop_text.tolist())]
    keep = (~drop_image).to(cond.dtype).view(-1, *([1] * (cond.ndim - 1))).to(cond.device)
    return texts, cond * keep
