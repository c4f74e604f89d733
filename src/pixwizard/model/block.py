"""One Next-DiT block with PixWizard's semantic path and Task-Aware Dynamic Sampler."""

from __future__ import annotations

import torch
import torch.nn as nn

from pixwizard.config import ModelConfig
from pixwizard.model.attention import JointAttention
from pixwizard.model.dynamic_sampler import TaskAwareSampler
from pixwizard.model.layers import RMSNorm, SwiGLU, modulate, swiglu_hidden, zero_init


class DiTBlock(nn.Module):
    """Sandwich RMSNorm around attention and FFN, scale-only adaLN with tanh gates (zero-init)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, eps = cfg.dim, cfg.norm_eps
        self.attention = JointAttention(d, cfg.heads, cfg.kv_heads, cfg.text_dim if cfg.use_text else None,
                                        cfg.use_semantic, cfg.qk_norm, eps, cfg.cross_attn_rope_query)
        self.feed_forward = SwiGLU(d, swiglu_hidden(d, cfg.ffn_mult, cfg.multiple_of))
        self.attention_norm1, self.attention_norm2 = RMSNorm(d, eps), RMSNorm(d, eps)
        self.ffn_norm1, self.ffn_norm2 = RMSNorm(d, eps), RMSNorm(d, eps)
        # -> scale_msa, gate_msa, scale_mlp, gate_mlp; zero-init so every block starts as identity
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), zero_init(nn.Linear(cfg.adaln_dim, 4 * d)))
        self.use_semantic = cfg.use_semantic
        if cfg.use_semantic:
            self.input_image_proj = nn.Linear(cfg.semantic_dim, d, bias=False)
            self.attention_input_norm = RMSNorm(d, eps)
            self.sampler = (TaskAwareSampler(d, cfg.adaln_dim, cfg.sampler_keep, cfg.sampler_tau,
                                             eval_gumbel=cfg.sampler_eval_gumbel)
                            if cfg.sampler_enabled else None)
            self.score_before_norm = cfg.sampler_score_before_norm

    def semantic_tokens(self, semantic: torch.Tensor, task: torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Project [B, N, semantic_dim] tokens to the block width and keep the sampler's K (scored
        after the norm, or before it with ``sampler_score_before_norm``, the official order)."""
        s = self.input_image_proj(semantic)
        if self.sampler is not None and self.score_before_norm:
            return self.attention_input_norm(self.sampler(s, task, generator).tokens)
        s = self.attention_input_norm(s)
        if self.sampler is not None:
            s = self.sampler(s, task, generator).tokens
        return s

    def forward(self, x: torch.Tensor, c: torch.Tensor, task: torch.Tensor, freqs: torch.Tensor,
                q_scale, self_mask=None, text=None, text_mask=None, semantic=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(4, dim=-1)
        sem = self.semantic_tokens(semantic, task, generator) if self.use_semantic and semantic is not None else None
        h = self.attention(modulate(self.attention_norm1(x), scale_msa), freqs, q_scale,
                           self_mask, text, text_mask, sem)
        x = torch.addcmul(x, torch.tanh(gate_msa).unsqueeze(1), self.attention_norm2(h))  # x + gate * h
        h = self.feed_forward(modulate(self.ffn_norm1(x), scale_mlp))
        return torch.addcmul(x, torch.tanh(gate_mlp).unsqueeze(1), self.ffn_norm2(h))
