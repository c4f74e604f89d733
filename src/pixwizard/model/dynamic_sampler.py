"""Task-Aware Dynamic Sampler: keep the K semantic tokens most relevant to the task.

Per block, the projected semantic tokens plus the projected task embedding are scored by a small
MLP that sees each token (local half of its channels) and the token mean (global half), as in
DynamicViT's predictor. Training picks the top-K of ``logits + Gumbel noise`` as a multi-hot mask
and passes gradients straight through a softmax at temperature ``tau``; evaluation picks the plain
top-K of the logits (deterministic; the original kept the Gumbel noise at test time, which
``eval_gumbel`` reproduces for the released checkpoint's exact-compat mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Selection:
    tokens: torch.Tensor  # [B, K, D] the kept tokens (times the straight-through weight in training)
    index: torch.Tensor  # [B, K] indices of the kept tokens
    logits: torch.Tensor  # [B, N] scores of every token


def gumbel_topk_straight_through(logits: torch.Tensor, k: int, tau: float,
                                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-hot Gumbel top-k. Returns (weights [B, N] equal to the hard mask in value with the
    gradient of ``softmax((logits + g) / tau)``, index [B, k])."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    g = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))  # Gumbel(0, 1)
    noisy = logits.float() + g
    index = noisy.topk(k, dim=-1).indices
    soft = F.softmax(noisy / tau, dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return hard - soft.detach() + soft, index


class TaskAwareSampler(nn.Module):
    def __init__(self, dim: int, cond_dim: int, keep: int, tau: float = 5.0, eval_gumbel: bool = False):
        super().__init__()
        self.keep = keep
        self.tau = tau
        self.eval_gumbel = eval_gumbel  # keep the Gumbel noise in eval mode too (official quirk)
        self.task_proj = nn.Linear(cond_dim, dim, bias=False)  # reference name: y_pool_proj
        self.in_conv = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU())
        self.out_conv = nn.Sequential(
            # no bias on the last layer: a shift shared by all scores changes neither the top-K nor the
            # softmax, so it could never learn (the original checkpoint carries such a dead bias)
            nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, dim // 4), nn.GELU(), nn.Linear(dim // 4, 1, bias=False)
        )

    def scores(self, tokens: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        h = self.in_conv(tokens + self.task_proj(task).unsqueeze(1))  # [B, N, D]
        local, glob = h.chunk(2, dim=-1)
        glob = glob.mean(dim=1, keepdim=True).expand_as(glob)
        return self.out_conv(torch.cat([local, glob], dim=-1)).squeeze(-1)  # [B, N]

    def forward(self, tokens: torch.Tensor, task: torch.Tensor,
                generator: torch.Generator | None = None) -> Selection:
        """tokens [B, N, D] (projected semantic tokens), task [B, cond_dim] -> the K kept tokens."""
        logits = self.scores(tokens, task)
        k = min(self.keep, tokens.shape[1])
        if self.training or self.eval_gumbel:
            weights, index = gumbel_topk_straight_through(logits, k, self.tau, generator)
            w = weights.gather(1, index).to(tokens.dtype)  # 1.0 in value, carries the gradient
            kept = tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])) * w.unsqueeze(-1)
        else:
            index = logits.topk(k, dim=-1).indices
            kept = tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        return Selection(kept, index, logits)
