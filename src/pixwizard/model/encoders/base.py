"""The one interface every encoder implements, so the paper-scale parts drop in for the defaults.

Conventions:
- images enter encoders as float tensors [B, 3, H, W] in [-1, 1] (RGB);
- text encoders are frozen and return token states, a key-padding mask and a pooled vector;
- semantic encoders return patch tokens [B, N, D] (no CLS token);
- codecs map images to latents and back; the pixel codec is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class TextEncoding:
    tokens: torch.Tensor  # [B, L, token_dim]
    mask: torch.Tensor  # [B, L] bool, True = real token
    pooled: torch.Tensor  # [B, pooled_dim]

    def to(self, device=None, dtype=None) -> "TextEncoding":
        return TextEncoding(self.tokens.to(device=device, dtype=dtype), self.mask.to(device),
                            self.pooled.to(device=device, dtype=dtype))

    def index(self, idx) -> "TextEncoding":
        return TextEncoding(self.tokens[idx], self.mask[idx], self.pooled[idx])


@runtime_checkable
class TextEncoder(Protocol):
    token_dim: int
    pooled_dim: int

    def encode(self, texts: list[str]) -> TextEncoding: ...


@runtime_checkable
class SemanticEncoder(Protocol):
    dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...  # [B,3,H,W] in [-1,1] -> [B,N,dim]


@runtime_checkable
class LatentCodec(Protocol):
    channels: int
    downsample: int

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...  # [B,3,H,W] in [-1,1] -> [B,C,H/f,W/f]

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...  # -> [B,3,H,W] in about [-1,1]
