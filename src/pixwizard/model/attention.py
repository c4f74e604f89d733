"""Joint attention of a Next-DiT block: self-attention over image tokens (2D RoPE, GQA, q/k norm)
plus zero-init, per-head tanh-gated cross-attention to the instruction tokens and to the semantic
tokens, summed before the shared output projection (DESIGN section 3)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixwizard.model.layers import RMSNorm
from pixwizard.model.rope import apply_rope


SHORT_KV = 128  # cross-attention to at most this many keys uses batched matmuls (see below)


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """[B, N, n*hd] -> [B, n, N, hd]"""
    return x.unflatten(-1, (n, -1)).transpose(1, 2)


def short_kv_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of many queries to few keys with grouped KV heads, as two batched matmuls.

    q [B, H, N, d], k/v [B, G, L, d] (H a multiple of G, query head h uses KV head h // (H/G), as
    ``enable_gqa``), mask [B, L] bool (True = attend). Equal to scaled_dot_product_attention; on CPU
    its flash kernel tiles the keys in large blocks and is ~2x slower than this for L of 16-64."""
    b, h, n, d = q.shape
    g, length = k.shape[1], k.shape[2]
    qg = q.reshape(b * g, (h // g) * n, d)
    s = torch.baddbmm(torch.zeros((), dtype=q.dtype, device=q.device), qg, k.reshape(b * g, length, d).transpose(1, 2),
                      beta=0.0, alpha=d ** -0.5)
    if mask is not None:
        s = s.masked_fill(~mask.repeat_interleave(g, dim=0)[:, None, :], float("-inf"))
    return torch.bmm(s.softmax(-1), v.reshape(b * g, length, d)).view(b, h, n, d)


class JointAttention(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int, text_dim: int | None, use_semantic: bool,
                 qk_norm: bool = True, eps: float = 1e-5, cross_rope_query: bool = False):
        super().__init__()
        self.cross_rope_query = cross_rope_query  # cross-attentions take the rotated q (official checkpoint)
        if dim % heads or heads % kv_heads:
            raise ValueError(f"dim {dim} must divide by heads {heads}, and heads by kv_heads {kv_heads}")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        q_dim, kv_dim = heads * self.head_dim, kv_heads * self.head_dim
        self.wqkv = nn.Linear(dim, q_dim + 2 * kv_dim, bias=False)
        self.q_norm = nn.LayerNorm(q_dim, eps=eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(kv_dim, eps=eps) if qk_norm else nn.Identity()
        self.wo = nn.Linear(q_dim, dim, bias=False)
        self.text = text_dim is not None
        if self.text:
            self.text_norm = RMSNorm(text_dim, eps)
            self.wkv_y = nn.Linear(text_dim, 2 * kv_dim, bias=False)
            self.ky_norm = nn.LayerNorm(kv_dim, eps=eps) if qk_norm else nn.Identity()
            self.gate_y = nn.Parameter(torch.zeros(heads))  # zero-init: text path starts closed
        self.semantic = use_semantic
        if self.semantic:
            self.wkv_ii = nn.Linear(dim, 2 * kv_dim, bias=False)
            self.kii_norm = nn.LayerNorm(kv_dim, eps=eps) if qk_norm else nn.Identity()
            self.gate_ii = nn.Parameter(torch.zeros(heads))  # zero-init: semantic path starts closed

    def _cross(self, q: torch.Tensor, tokens: torch.Tensor, wkv: nn.Linear, k_norm: nn.Module,
               mask: torch.Tensor | None) -> torch.Tensor:
        k, v = wkv(tokens).chunk(2, dim=-1)
        k = _heads(k_norm(k), self.kv_heads)
        v = _heads(v, self.kv_heads)
        if k.shape[2] <= SHORT_KV:
            return short_kv_attention(q, k, v, mask)
        attn_mask = None if mask is None else mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=True)

    def forward(self, x: torch.Tensor, freqs: torch.Tensor, q_scale: torch.Tensor | float,
                self_mask: torch.Tensor | None = None, text: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, semantic: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, dim]; freqs RoPE rotations (complex, or real cos/sin pairs); q_scale multiplies the softmax scale
        (proportional attention; a float, or [B,1,1,1] for per-item scales); self_mask [B, N] bool key mask (mixed-size batches); text [B, L, text_dim] with
        text_mask [B, L]; semantic [B, K, dim] (already projected and selected)."""
        q_dim = self.heads * self.head_dim
        kv_dim = self.kv_heads * self.head_dim
        q, k, v = self.wqkv(x).split((q_dim, kv_dim, kv_dim), dim=-1)
        q = _heads(self.q_norm(q), self.heads)
        k = _heads(self.k_norm(k), self.kv_heads)
        v = _heads(v, self.kv_heads)
        q_rot = apply_rope(q, freqs)
        k = apply_rope(k, freqs)
        if self.cross_rope_query:
            q = q_rot
        attn_mask = None if self_mask is None else self_mask[:, None, None, :]
        if isinstance(q_scale, torch.Tensor):  # per-item scales: fold into q
            q_rot, scale = q_rot * q_scale.to(q_rot.dtype), None
        else:
            scale = q_scale / self.head_dim ** 0.5
        out = F.scaled_dot_product_attention(q_rot, k, v, attn_mask=attn_mask, scale=scale, enable_gqa=True)
        if self.text and text is not None:
            y = self._cross(q, self.text_norm(text), self.wkv_y, self.ky_norm, text_mask)
            out = out + torch.tanh(self.gate_y).to(y.dtype)[None, :, None, None] * y
        if self.semantic and semantic is not None:
            s = self._cross(q, semantic, self.wkv_ii, self.kii_norm, None)
            out = out + torch.tanh(self.gate_ii).to(s.dtype)[None, :, None, None] * s
        return self.wo(out.transpose(1, 2).flatten(2))
