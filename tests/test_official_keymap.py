"""Every tensor of the released 2B checkpoint (its key list and shapes,
../shared/reference/pixwizard_2b_gqa_state_dict.json) maps with the right shape onto the base-2b
model built on the meta device, and a strict load succeeds; the RoPE and final-layer
permutations are the ones the official layouts need."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pixwizard.config import base_2b, preset
from pixwizard.model.dit import PixWizardDiT
from pixwizard.official.convert import official_config
from pixwizard.official.keymap import UNUSED, final_layer_rows, plan, rope_permutation

REFERENCE = Path(__file__).parents[2] / "shared" / "reference" / "pixwizard_2b_gqa_state_dict.json"


def test_2b_state_dict_maps_onto_base_2b_with_a_strict_load():
    ref = json.loads(REFERENCE.read_text())
    shapes = {k: tuple(v) for k, v in ref["state_dict"].items()}
    assert len(shapes) == 1003
    cfg = official_config(shapes, ref["args"])
    ours, paper = cfg.model, base_2b().model
    for f in ("patch_size", "in_channels", "dim", "depth", "heads", "kv_heads", "adaln_dim", "text_dim", "task_dim",
              "semantic_dim", "sampler_keep", "norm_eps"):
        assert getattr(ours, f) == getattr(paper, f), f
    assert ours.train_tokens == 2304 and cfg.name == "official-2b"
    assert cfg == preset("official-2b")  # the converter writes exactly the preset
    assert (cfg.text.kind, cfg.text.layer, cfg.text.pooled_kind, cfg.semantic.kind, cfg.codec.scaling_factor) == \
        ("gemma", -2, "clip", "clip", 0.13025)

    entries = plan(shapes, head_dim=ours.dim // ours.heads, patch=ours.patch_size, channels=ours.in_channels)
    used = {s for e in entries for s in e.sources}
    unused = set(shapes) - used
    assert len(unused) == 25 and all(UNUSED.match(k) for k in unused)  # pad_token + 24 dead scorer biases
    with torch.device("meta"):
        model = PixWizardDiT(ours)
    expected = model.state_dict()
    assert {e.name for e in entries} == set(expected)
    state = {}
    for e in entries:
        t = e.build([torch.empty(shapes[s], device="meta") for s in e.sources])
        assert tuple(t.shape) == tuple(expected[e.name].shape) == e.shape, e.name
        state[e.name] = t
    result = model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    # every official parameter is kept except the unused ones and the final layer's learn-sigma half
    n_params = sum(t.numel() for t in state.values())
    sigma_half = (shapes["final_layer.linear.weight"][0] // 2) * (ours.dim + 1)
    assert n_params == ref["num_parameters"] - sum(torch.Size(shapes[k]).numel() for k in unused) - sigma_half


def test_rope_permutation_turns_interleaved_pairs_into_rows_then_columns():
    hd = 16
    perm = rope_permutation(hd)
    # official channel layout: pair i = 2k is row frequency k, pair 2k + 1 column frequency k
    official = [("row" if (c // 2) % 2 == 0 else "col", (c // 2) // 2, c % 2) for c in range(hd)]
    ours = [official[i] for i in perm]
    assert ours == [("row", k, r) for k in range(4) for r in (0, 1)] + [("col", k, r) for k in range(4) for r in (0, 1)]


def test_final_layer_rows_reorder_patch_major_to_channel_major_and_drop_sigma():
    p, c = 2, 4
    rows = final_layer_rows(p * p * 2 * c, p, c)
    # official row index (ph * p + pw) * 2C + ch; ours ch * p * p + ph * p + pw, first C channels only
    for ch in range(c):
        for ph in range(p):
            for pw in range(p):
                assert rows[ch * p * p + ph * p + pw] == (ph * p + pw) * 2 * c + ch
    assert len(rows) == p * p * c
