"""Key map from the released PixWizard state dict (official names) to ``PixWizardDiT``'s.

Every official tensor is accounted for (DESIGN section 11; shared/reference/official-tiny/README.md):
- most map one to one, some renamed (``gate`` -> ``gate_y``, ``attention_y_norm`` ->
  ``attention.text_norm``, ``y_pool_proj`` -> ``sampler.task_proj``, ...);
- unfused projections are concatenated by rows into our fused ones: ``[wq; wk; wv]`` -> ``wqkv``,
  ``[wk_y; wv_y]`` -> ``wkv_y``, ``[wk_ii; wv_ii]`` -> ``wkv_ii``, ``[w1; w3]`` -> ``w13``;
- the official RoPE interleaves row and column frequency pairs inside each head, ours puts all row
  pairs first: the q/k rows of every projection whose output meets the rotated query (wq, wk, wk_y,
  wk_ii) and their LayerNorms (weight and bias; exact, the norms act on the whole vector) are
  permuted per head. Values and ``wo`` are untouched;
- the final layer's rows go from the official (pH, pW, C') order to our (C, pH, pW), and the
  learn-sigma half (C' >= C) is dropped;
- ``pad_token`` (pads mixed-size batches, which we mask instead) and each block's
  ``out_conv.4.bias`` (one constant added to every score: changes neither the top-K nor the
  output) are not used.

Everything here works on shapes first (:func:`plan`), so a converter can check a whole checkpoint
and write the result one tensor at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

UNUSED = re.compile(r"^(pad_token|layers\.\d+\.out_conv\.4\.bias)$")

# one-to-one names inside a block: official suffix -> ours
_BLOCK_RENAMES = {
    "attention.gate": "attention.gate_y",
    "attention.gate_for_ii": "attention.gate_ii",
    "attention.wo.weight": "attention.wo.weight",
    "attention.ky_norm.weight": "attention.ky_norm.weight",  # permuted (meets the rotated q)
    "attention.ky_norm.bias": "attention.ky_norm.bias",
    "attention.kii_norm.weight": "attention.kii_norm.weight",
    "attention.kii_norm.bias": "attention.kii_norm.bias",
    "attention.q_norm.weight": "attention.q_norm.weight",
    "attention.q_norm.bias": "attention.q_norm.bias",
    "attention.k_norm.weight": "attention.k_norm.weight",
    "attention.k_norm.bias": "attention.k_norm.bias",
    "attention_y_norm.weight": "attention.text_norm.weight",
    "feed_forward.w2.weight": "feed_forward.w2.weight",
    "attention_norm1.weight": "attention_norm1.weight",
    "attention_norm2.weight": "attention_norm2.weight",
    "ffn_norm1.weight": "ffn_norm1.weight",
    "ffn_norm2.weight": "ffn_norm2.weight",
    "adaLN_modulation.1.weight": "adaLN_modulation.1.weight",
    "adaLN_modulation.1.bias": "adaLN_modulation.1.bias",
    "input_image_proj.weight": "input_image_proj.weight",
    "attention_input_norm.weight": "attention_input_norm.weight",
    "y_pool_proj.weight": "sampler.task_proj.weight",
    "in_conv.0.weight": "sampler.in_conv.0.weight",
    "in_conv.0.bias": "sampler.in_conv.0.bias",
    "in_conv.1.weight": "sampler.in_conv.1.weight",
    "in_conv.1.bias": "sampler.in_conv.1.bias",
    "out_conv.0.weight": "sampler.out_conv.0.weight",
    "out_conv.0.bias": "sampler.out_conv.0.bias",
    "out_conv.2.weight": "sampler.out_conv.2.weight",
    "out_conv.2.bias": "sampler.out_conv.2.bias",
    "out_conv.4.weight": "sampler.out_conv.4.weight",
}
_ROPE_PERMUTED = {"attention.q_norm.weight", "attention.q_norm.bias", "attention.k_norm.weight",
                  "attention.k_norm.bias", "attention.ky_norm.weight", "attention.ky_norm.bias",
                  "attention.kii_norm.weight", "attention.kii_norm.bias"}
# fused targets: ours <- official rows concatenated in this order; which parts are RoPE-permuted
_BLOCK_FUSED = {
    "attention.wqkv.weight": (("attention.wq.weight", True), ("attention.wk.weight", True),
                              ("attention.wv.weight", False)),
    "attention.wkv_y.weight": (("attention.wk_y.weight", True), ("attention.wv_y.weight", False)),
    "attention.wkv_ii.weight": (("attention.wk_ii.weight", True), ("attention.wv_ii.weight", False)),
    "feed_forward.w13.weight": (("feed_forward.w1.weight", False), ("feed_forward.w3.weight", False)),
}
_TOP_LEVEL = ("x_embedder.weight", "x_embedder.bias", "t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias",
              "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias", "task_embedder.0.weight",
              "task_embedder.0.bias", "task_embedder.1.weight", "task_embedder.1.bias",
              "global_semantic_embedder.0.weight", "global_semantic_embedder.0.bias",
              "global_semantic_embedder.1.weight", "global_semantic_embedder.1.bias",
              "final_layer.adaLN_modulation.1.weight", "final_layer.adaLN_modulation.1.bias")
_FINAL = ("final_layer.linear.weight", "final_layer.linear.bias")


def rope_permutation(head_dim: int) -> torch.Tensor:
    """Channel index into the official head layout for each of our channels.

    Official: complex pair i = 2k rotates by row * f_k, i = 2k + 1 by col * f_k. Ours: pairs
    0..hd/4-1 are the rows (f_0, f_1, ...), then the columns."""
    if head_dim % 4:
        raise ValueError(f"head_dim must be a multiple of 4 for 2D RoPE, got {head_dim}")
    quarter = head_dim // 4
    pairs = [2 * j for j in range(quarter)] + [2 * j + 1 for j in range(quarter)]
    return torch.tensor([2 * p + r for p in pairs for r in (0, 1)])


def permute_heads(t: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Apply :func:`rope_permutation` inside every head of the rows (dim 0) of ``t``."""
    if t.shape[0] % head_dim:
        raise ValueError(f"{t.shape[0]} rows are not whole heads of {head_dim}")
    heads = t.shape[0] // head_dim
    idx = (torch.arange(heads)[:, None] * head_dim + rope_permutation(head_dim)[None]).flatten()
    return t.index_select(0, idx)


def final_layer_rows(out_rows: int, patch: int, channels: int) -> torch.Tensor:
    """Official row for each of our final-layer rows: ours (c, ph, pw) for c < channels, official
    (ph, pw, c') with ``out_rows / patch^2`` channels c' (the learn-sigma half included)."""
    c_all = out_rows // (patch * patch)
    if c_all * patch * patch != out_rows or c_all < channels:
        raise ValueError(f"final layer has {out_rows} rows: not a multiple of patch^2 = {patch * patch} "
                         f"with at least {channels} channels")
    return torch.tensor([(ph * patch + pw) * c_all + c for c in range(channels)
                         for ph in range(patch) for pw in range(patch)])


@dataclass(frozen=True)
class Entry:
    """One tensor of the converted state dict, built from official tensors."""

    name: str  # our key (inside the DiT)
    sources: tuple[str, ...]  # official keys it is built from
    shape: tuple[int, ...]
    build: Callable[[list[torch.Tensor]], torch.Tensor]


def _copy(ts: list[torch.Tensor]) -> torch.Tensor:
    return ts[0]


def plan(shapes: dict[str, tuple[int, ...]], *, head_dim: int, patch: int, channels: int) -> list[Entry]:
    """The converted state dict as a list of entries, from the official keys' shapes alone.

    Raises ``ValueError`` naming the first missing or unexpected keys (a partial or foreign file)."""
    depth = 1 + max((int(m.group(1)) for k in shapes if (m := re.match(r"layers\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise ValueError("no transformer blocks (layers.N.*) in the state dict: not an official PixWizard checkpoint")
    entries: list[Entry] = [Entry(k, (k,), tuple(shapes[k]) if k in shapes else (), _copy) for k in _TOP_LEVEL]
    for i in range(depth):
        pre = f"layers.{i}."
        for off, ours in _BLOCK_RENAMES.items():
            src = pre + off
            shape = tuple(shapes.get(src, ()))
            if off in _ROPE_PERMUTED:
                entries.append(Entry(pre + ours, (src,), shape, lambda ts: permute_heads(ts[0], head_dim)))
            else:
                entries.append(Entry(pre + ours, (src,), shape, _copy))
        for ours, parts in _BLOCK_FUSED.items():
            srcs = tuple(pre + off for off, _ in parts)
            flags = tuple(rot for _, rot in parts)
            rows = sum(shapes[s][0] for s in srcs if s in shapes)
            cols = shapes[srcs[0]][1] if srcs[0] in shapes else 0

            def fuse(ts: list[torch.Tensor], flags=flags) -> torch.Tensor:
                return torch.cat([permute_heads(t, head_dim) if rot else t for t, rot in zip(ts, flags)])

            entries.append(Entry(pre + ours, srcs, (rows, cols), fuse))
    bias = shapes.get("final_layer.linear.bias")
    rows = final_layer_rows(bias[0], patch, channels) if bias else None
    for k in _FINAL:
        shape = tuple(shapes.get(k, ()))
        if rows is not None and shape:
            shape = (len(rows),) + shape[1:]
        entries.append(Entry(k, (k,), shape, lambda ts, rows=rows: ts[0].index_select(0, rows)))

    used = {s for e in entries for s in e.sources}
    missing = sorted(used - set(shapes))
    unexpected = sorted(k for k in set(shapes) - used if not UNUSED.match(k))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise ValueError("not a complete official PixWizard state dict: " + "; ".join(parts))
    return entries
