"""PixWizard: the DiT plus the trainable semantic encoder, one module for training and checkpoints.

The frozen parts (instruction encoder, latent codec, a frozen CLIP vision encoder) live outside
this module's saved state: :meth:`PixWizard.trainable_state_dict` holds only what training changes.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pixwizard.config import PixWizardConfig
from pixwizard.model.dit import PixWizardDiT
from pixwizard.model.encoders.base import TextEncoding
from pixwizard.model.encoders.semantic import build_semantic_encoder
from pixwizard.model.refine import RefineHead

# parts that start as the identity: a model grown with them loads a file without them (``train --init``)
GROWN_PARTS = ("refine.",)


class PixWizard(nn.Module):
    def __init__(self, cfg: PixWizardConfig, semantic_encoder: nn.Module | None = None):
        super().__init__()
        self.config = cfg
        self.dit = PixWizardDiT(cfg.model)
        if cfg.model.use_semantic and semantic_encoder is None:
            semantic_encoder = build_semantic_encoder(cfg.semantic)
        self.semantic = semantic_encoder if cfg.model.use_semantic else None
        # condition skip: x1_hat = net + gate * cond, gate = 1 + linear(task embedding) per channel,
        # zero-initialised (a new model returns its input); lets dense tasks learn to close the skip
        self.skip_gate = nn.Linear(cfg.model.task_dim, cfg.model.in_channels) if cfg.model.condition_skip else None
        if self.skip_gate is not None:
            nn.init.zeros_(self.skip_gate.weight)
            nn.init.zeros_(self.skip_gate.bias)
        # refinement across patch borders (zero-initialised: starts as the identity)
        self.refine = RefineHead(cfg.model.in_channels, cfg.model.refine) if cfg.model.refine else None

    def encode_semantic(self, cond_pixels: torch.Tensor, valid_sizes: list[tuple[int, int]] | None = None):
        """Semantic tokens of the condition image [B, 3, H, W] in [-1, 1]; in a padded mixed-size
        batch each item is encoded from its own valid region."""
        if self.semantic is None:
            return None
        if valid_sizes is None:
            return self.semantic(cond_pixels)
        return torch.cat([self.semantic(cond_pixels[i:i + 1, :, :h, :w]) for i, (h, w) in enumerate(valid_sizes)])

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, text: TextEncoding,
                cond_pixels: torch.Tensor | None = None, valid_sizes: list[tuple[int, int]] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t, cond: latents [B, C, H, W]; text: the encoded instructions; cond_pixels: the condition
        image in pixel space for the semantic encoder (defaults to ``cond``, right for pixel space);
        valid_sizes: latent (H, W) per item of a padded batch. Returns :meth:`predict`'s output."""
        f = self.config.codec.downsample
        pix_sizes = None if valid_sizes is None else [(h * f, w * f) for h, w in valid_sizes]
        sem = self.encode_semantic(cond if cond_pixels is None else cond_pixels, pix_sizes)
        return self.predict(x_t, t, cond, text, sem, valid_sizes=valid_sizes, generator=generator)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, text: TextEncoding,
                semantic: torch.Tensor | None, valid_sizes: list[tuple[int, int]] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The network output given already-encoded semantic tokens (the sampler encodes them once
        per image, not once per step): the DiT output, plus the gated ``cond`` with ``model.condition_skip``,
        refined across patch borders with ``model.refine``."""
        out = self.dit(x_t, t, cond=cond, text_tokens=text.tokens, text_mask=text.mask,
                       text_pooled=text.pooled, semantic=semantic, valid_sizes=valid_sizes, generator=generator)
        if self.skip_gate is not None:  # x1_hat = gate * condition + change (config checks prediction = x)
            gate = 1 + self.skip_gate(text.pooled.to(self.skip_gate.weight.dtype))
            out = out + gate.to(out.dtype)[:, :, None, None] * cond.to(out.dtype)
        if self.refine is not None:
            out = self.refine(out, cond, t)
        return out

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state without a frozen semantic encoder (which is loaded from its own weights)."""
        frozen = self.semantic is not None and not any(p.requires_grad for p in self.semantic.parameters())
        return {k: v for k, v in self.state_dict().items() if not (frozen and k.startswith("semantic."))}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
