"""Semantic image encoders behind :class:`~pixwizard.model.encoders.base.SemanticEncoder`.

Input: the condition image ``[B, 3, H, W]`` in ``[-1, 1]`` (RGB), any size and aspect ratio; it is
resized (bilinear, antialiased, aspect not kept) to the encoder's square input. Output: patch
tokens ``[B, N, dim]`` without a CLS token, ordered row-major over the token grid.

- :class:`ConvSemanticEncoder` (default, trainable with the DiT): a small strided conv net,
  ``N = grid * grid``, with a learned position embedding.
- :class:`CLIPVisionSemanticEncoder` (paper): a frozen CLIP vision tower, last hidden state
  without CLS (``[B, 576, 1024]`` for ViT-L/14-336), CLIP mean/std normalisation.
- ``kind="none"``: :func:`build_semantic_encoder` returns ``None``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pixwizard.config import SemanticEncoderConfig

# OpenAI CLIP preprocessing statistics (RGB, images in [0, 1]).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"semantic encoders take images [B, 3, H, W], got {tuple(images.shape)}")


def resize_square(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize [B, C, H, W] to [B, C, size, size] (no-op when already that size). ``mode``:
    "bilinear" (antialiased) or "bicubic-align-corners" (no antialias; the official PixWizard's
    CLIP preprocessing)."""
    if images.shape[-2:] == (size, size):
        return images
    if mode == "bicubic-align-corners":
        return F.interpolate(images, size=(size, size), mode="bicubic", align_corners=True, antialias=False)
    if mode != "bilinear":
        raise ValueError(f"unknown resize mode {mode!r}; choose 'bilinear' or 'bicubic-align-corners'")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def _groups(width: int) -> int:
    return math.gcd(width, 32)


class ConvSemanticEncoder(nn.Module):
    """Condition image -> ``grid x grid`` tokens of width ``dim``, trained with the model.

    Layout (``r = image_size / grid``, a power of two): a patchify stem [conv k=s=clip(r/2, 1, 8),
    GroupNorm, SiLU] at ``width`` channels, then [3x3 conv stride 2, GroupNorm, SiLU] stages down
    to the grid (at least one), one 3x3 mixing conv at the grid resolution, a 1x1 projection to ``dim``, then a
    learned position embedding (std 0.02).
    """

    def __init__(self, dim: int, *, image_size: int = 128, grid: int = 8, width: int = 64):
        super().__init__()
        ratio = image_size // grid if grid > 0 else 0
        if grid < 1 or image_size % grid or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(f"image_size / grid must be a power of two >= 2, got {image_size} / {grid}")
        self.dim, self.image_size, self.grid = dim, image_size, grid
        stem = min(max(ratio // 2, 1), 8)  # patchify stem: cheap at full resolution
        stages: list[nn.Module] = [nn.Conv2d(3, width, stem, stride=stem), nn.GroupNorm(_groups(width), width),
                                   nn.SiLU()]
        for _ in range(int(math.log2(ratio // stem))):
            stages += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GroupNorm(_groups(width), width),
                       nn.SiLU()]
        stages += [nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(_groups(width), width), nn.SiLU(),
                   nn.Conv2d(width, dim, 1)]
        self.net = nn.Sequential(*stages)
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        x = resize_square(images, self.image_size)  # [B, 3, S, S]
        x = self.net(x)  # [B, dim, grid, grid]
        return x.flatten(2).transpose(1, 2) + self.pos  # [B, grid*grid, dim]


class CLIPVisionSemanticEncoder(nn.Module):
    """Frozen CLIP vision tower: last hidden state without CLS, ``[B, (S/patch)^2, hidden]``.

    The condition goes from ``[-1, 1]`` to ``[0, 1]``, is resized to the model's ``image_size``
    (the whole image, squashed; no centre crop) and normalised with the CLIP mean/std.
    """

    def __init__(self, model: nn.Module, resize: str = "bilinear"):
        super().__init__()
        self.model = model
        self.resize = resize
        cfg = model.config
        self.dim = cfg.hidden_size
        self.image_size = cfg.image_size
        self.num_tokens = (cfg.image_size // cfg.patch_size) ** 2
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "CLIPVisionSemanticEncoder":
        """Frozen: stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        x = resize_square((images.float() + 1.0) / 2.0, self.image_size, self.resize)
        x = (x - self.mean) / self.std
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=x.to(dtype))
        return out.last_hidden_state[:, 1:].float()  # drop CLS -> [B, N, hidden], float32


def _build_conv(cfg: SemanticEncoderConfig, dtype: torch.dtype | None) -> nn.Module:
    return ConvSemanticEncoder(cfg.dim, image_size=cfg.image_size, grid=cfg.grid, width=cfg.width)


def _build_clip(cfg: SemanticEncoderConfig, dtype: torch.dtype | None) -> nn.Module:
    from transformers import CLIPVisionModel

    from pixwizard.model.encoders.text import DEFAULT_CLIP, load_pretrained

    path = cfg.name_or_path or DEFAULT_CLIP
    enc = CLIPVisionSemanticEncoder(load_pretrained(CLIPVisionModel, path, "CLIP vision model",
                                                     dtype=dtype), resize=cfg.resize)
    if enc.dim != cfg.dim:
        raise ValueError(f"CLIP vision model {path!r} gives {enc.dim}-d tokens but the config says dim={cfg.dim}")
    if enc.image_size != cfg.image_size:
        raise ValueError(f"CLIP vision model {path!r} takes {enc.image_size}px images but the config "
                         f"says image_size={cfg.image_size}")
    return enc


_BUILDERS: dict[str, Callable[[SemanticEncoderConfig, torch.dtype | None], nn.Module | None]] = {
    "conv": _build_conv,
    "clip": _build_clip,
    "none": lambda cfg, dtype: None,
}


def build_semantic_encoder(cfg: SemanticEncoderConfig, *, dtype: torch.dtype | None = None) -> nn.Module | None:
    """Build the semantic encoder ``cfg`` describes (``None`` for ``kind="none"``).

    ``dtype`` applies to pretrained (CLIP) weights only (default: the checkpoint's own); the conv
    encoder is built in float32 and trained with the model.
    """
    builder = _BUILDERS.get(cfg.kind)
    if builder is None:
        raise ValueError(f"unknown semantic encoder kind {cfg.kind!r}; choose one of: {', '.join(_BUILDERS)}")
    return builder(cfg, dtype)
