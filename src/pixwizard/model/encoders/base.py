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

    def unpack(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per item: (its real token states [n, D], its pooled vector [P]); masks are right-padded."""
        return [(self.tokens[i, : int(self.mask[i].sum())], self.pooled[i]) for i in range(self.tokens.shape[0])]

    @staticmethod
    def pack(items: list[tuple[torch.Tensor, torch.Tensor]]) -> "TextEncoding":
        """A batch from per-item (tokens [n_i, D], pooled [P]): tokens right-padded with zeros to the
        longest item (at least 1), mask True on real tokens."""
        if not items:
            raise ValueError("pack needs at least one item")
        length = max(1, max(tok.shape[0] for tok, _ in items))
        ref = items[0][0]
        tokens = ref.new_zeros(len(items), length, ref.shape[-1])
        mask = torch.zeros(len(items), length, dtype=torch.bool, device=ref.device)
        for i, (tok, _) in enumerate(items):
            tokens[i, : tok.shape[0]] = tok
            mask[i, : tok.shape[0]] = True
        return TextEncoding(tokens, mask, torch.stack([p for _, p in items]))


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
