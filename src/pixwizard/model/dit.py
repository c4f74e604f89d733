"""PixWizardDiT: the unified flow-matching Diffusion Transformer (DESIGN section 3).

Input: the noisy target latent concatenated channel-wise with the condition latent
(structural-aware guidance), patchified. Conditioning vector for adaLN: timestep embedding +
task embedding (pooled instruction vector) + global semantic embedding. Text and semantic tokens
reach every block through gated cross-attention. Output: the network's prediction (velocity or
clean target, as the flow config says) at the input's latent size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from pixwizard.config import ModelConfig
from pixwizard.model.block import DiTBlock
from pixwizard.model.layers import TimestepEmbedder, zero_init
from pixwizard.model.rope import ntk_theta, rope_2d


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)*(W/p), C*p*p], channel-major inside a patch, tokens row-major."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(x: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`patchify` for a grid of (h/p, w/p) tokens."""
    b = x.shape[0]
    return x.reshape(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


class FinalLayer(nn.Module):
    """LayerNorm without affine, adaLN scale, zero-init linear to patch values."""

    def __init__(self, dim: int, adaln_dim: int, out: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), zero_init(nn.Linear(adaln_dim, dim)))
        self.linear = zero_init(nn.Linear(dim, out))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale = self.adaLN_modulation(c)
        return self.linear(self.norm_final(x) * (1 + scale.unsqueeze(1)))


class PixWizardDiT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p, c = cfg.patch_size, cfg.in_channels
        in_ch = c * (2 if cfg.use_structural else 1)
        self.x_embedder = nn.Linear(in_ch * p * p, cfg.dim)
        nn.init.xavier_uniform_(self.x_embedder.weight)
        nn.init.zeros_(self.x_embedder.bias)
        if cfg.use_structural:
            with torch.no_grad():  # the condition half starts at zero: [noisy || condition], channel-major
                self.x_embedder.weight[:, c * p * p:] = 0
        self.t_embedder = TimestepEmbedder(cfg.adaln_dim, scale=cfg.timestep_scale)
        self.task_embedder = nn.Sequential(nn.LayerNorm(cfg.task_dim), nn.Linear(cfg.task_dim, cfg.adaln_dim))
        nn.init.normal_(self.task_embedder[1].weight, std=0.02)
        nn.init.zeros_(self.task_embedder[1].bias)
        if cfg.use_semantic:
            self.global_semantic_embedder = nn.Sequential(
                nn.LayerNorm(cfg.semantic_dim), zero_init(nn.Linear(cfg.semantic_dim, cfg.adaln_dim)))
        self.layers = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        out = c * (2 if cfg.learn_sigma else 1)
        self.final_layer = FinalLayer(cfg.dim, cfg.adaln_dim, p * p * out)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear) and not name.startswith(("x_embedder", "t_embedder", "task_embedder",
                                                                  "global_semantic", "final_layer")):
                if "adaLN_modulation" in name:
                    continue
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ positions
    def _positions(self, rows: int, cols: int, valid: list[tuple[int, int]] | None, device,
                   attn_base: int | None = None):
        """RoPE tables, q scale (proportional attention, base ``attn_base`` tokens, default
        ``train_tokens``) and key mask for a (possibly padded) grid."""
        cfg, hd = self.cfg, self.cfg.dim // self.cfg.heads
        n_train = cfg.train_tokens
        n_ntk = n_train if cfg.rope_ntk else None
        n_base = n_train if attn_base is None else int(attn_base)

        def scale(n: int) -> float:
            return math.sqrt(math.log(max(n, 2)) / math.log(max(n_base, 2)))

        if valid is None:
            return rope_2d(rows, cols, hd, cfg.rope_theta, n_ntk, device, as_real=True), scale(rows * cols), None
        freqs, scales, masks = [], [], []
        for vr, vc in valid:
            # positions come from the padded grid; theta and scale from the item's own token count
            theta = cfg.rope_theta if n_ntk is None else ntk_theta(cfg.rope_theta, hd // 2, vr * vc, n_ntk)
            freqs.append(rope_2d(rows, cols, hd, theta, None, device, as_real=True))
            scales.append(scale(vr * vc))
            m = torch.zeros(rows, cols, dtype=torch.bool, device=device)
            m[:vr, :vc] = True
            masks.append(m.flatten())
        q_scale = torch.tensor(scales, device=device).view(-1, 1, 1, 1)
        return torch.stack(freqs)[:, None], q_scale, torch.stack(masks)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                text_tokens: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                text_pooled: torch.Tensor | None = None, semantic: torch.Tensor | None = None,
                valid_sizes: list[tuple[int, int]] | None = None,
                generator: torch.Generator | None = None, attn_base_tokens: int | None = None) -> torch.Tensor:
        """x, cond [B, C, H, W] (H, W multiples of the patch size); t [B] in [0, 1];
        text_tokens [B, L, text_dim], text_mask [B, L] bool, text_pooled [B, task_dim];
        semantic [B, N, semantic_dim]; valid_sizes: per item (H, W) when x is a padded mixed-size
        batch (padding is bottom/right); attn_base_tokens: the proportional-attention base for this
        call (default ``train_tokens``; the official inference passes (resolution // 16)^2 of its
        bucket). Returns [B, C, H, W]."""
        cfg, p = self.cfg, self.cfg.patch_size
        b, c, h, w = x.shape
        if h % p or w % p:
            raise ValueError(f"latent size {h}x{w} is not a multiple of the patch size {p}")
        if cfg.use_structural:
            if cond is None:
                raise ValueError("this model uses structural guidance: pass the condition latent")
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        tokens = self.x_embedder(patchify(x, p))
        rows, cols = h // p, w // p
        grid_valid = None if valid_sizes is None else [(vh // p, vw // p) for vh, vw in valid_sizes]
        freqs, q_scale, self_mask = self._positions(rows, cols, grid_valid, x.device, attn_base_tokens)

        cvec = self.t_embedder(t)
        if text_pooled is None:
            raise ValueError("pass text_pooled: the task embedding comes from the instruction")
        task = self.task_embedder(text_pooled.to(cvec.dtype))
        cvec = cvec + task
        if cfg.use_semantic:
            if semantic is None:
                raise ValueError("this model uses semantic guidance: pass semantic tokens")
            cvec = cvec + self.global_semantic_embedder(semantic.mean(dim=1).to(cvec.dtype))
        text = text_tokens if cfg.use_text else None
        for layer in self.layers:
            tokens = layer(tokens, cvec, task, freqs, q_scale, self_mask, text, text_mask,
                           semantic if cfg.use_semantic else None, generator)
        out = self.final_layer(tokens, cvec)
        return unpatchify(out, p, out.shape[-1] // (p * p), h, w)[:, :c]
