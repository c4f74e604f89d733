"""The DiT of DESIGN section 3 on the debug preset: shapes, zero-init, gradients, sampler, sizes."""

import dataclasses
import math

import pytest
import torch

from pixwizard.config import preset
from pixwizard.flow import flow_loss, interpolate
from pixwizard.model.dit import PixWizardDiT, patchify, unpatchify
from pixwizard.model.dynamic_sampler import TaskAwareSampler
from pixwizard.model.encoders.base import TextEncoding
from pixwizard.model.pixwizard import PixWizard
from pixwizard.model.rope import ntk_theta, rope_2d


def fake_text(b, cfg, length=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, length, cfg.model.text_dim, generator=g)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[:, -1] = False
    return TextEncoding(tokens, mask, torch.randn(b, cfg.model.task_dim, generator=g))


def randomize_zero_init(model, std=0.05):
    """Give every zero-initialised tensor small random values so that all paths are live."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.add_(torch.randn(p.shape, generator=g) * std)


@pytest.mark.parametrize("h,w", [(4, 4), (12, 20), (36, 8), (28, 44)])
def test_any_size_and_aspect_ratio(debug_cfg, h, w):
    torch.manual_seed(0)
    m = PixWizard(debug_cfg).eval()
    randomize_zero_init(m)
    x = torch.randn(2, 3, h, w)
    out = m(x, torch.rand(2), torch.randn(2, 3, h, w), fake_text(2, debug_cfg))
    assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()


def test_size_not_multiple_of_patch_is_refused(debug_cfg):
    m = PixWizard(debug_cfg)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        m(torch.randn(1, 3, 10, 12), torch.rand(1), torch.randn(1, 3, 10, 12), fake_text(1, debug_cfg))


def test_patchify_roundtrip():
    x = torch.randn(2, 5, 12, 20)
    assert torch.equal(unpatchify(patchify(x, 4), 4, 5, 12, 20), x)


def test_zero_initialised_outputs_are_exactly_zero(debug_cfg):
    torch.manual_seed(0)
    m = PixWizard(debug_cfg)
    dit, p, c = m.dit, debug_cfg.model.patch_size, debug_cfg.model.in_channels
    out = m(torch.randn(2, 3, 16, 24), torch.rand(2), torch.randn(2, 3, 16, 24), fake_text(2, debug_cfg))
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.equal(dit.x_embedder.weight[:, c * p * p:], torch.zeros_like(dit.x_embedder.weight[:, c * p * p:]))
    assert dit.x_embedder.weight[:, : c * p * p].abs().sum() > 0
    for blk in dit.layers:
        assert blk.adaLN_modulation[1].weight.abs().sum() == 0
        assert blk.attention.gate_y.abs().sum() == 0 and blk.attention.gate_ii.abs().sum() == 0
    assert dit.final_layer.linear.weight.abs().sum() == 0
    assert dit.global_semantic_embedder[1].weight.abs().sum() == 0
    # with every gate closed each block is the identity: tokens leave the stack as they entered
    x = torch.randn(1, 3, 8, 8)
    tok = dit.x_embedder(patchify(torch.cat([x, torch.randn_like(x)], 1), p))
    cvec = torch.randn(1, debug_cfg.model.adaln_dim)
    freqs = rope_2d(2, 2, debug_cfg.model.dim // debug_cfg.model.heads)
    for blk in dit.layers:
        assert torch.allclose(blk(tok, cvec, cvec, freqs, 1.0, semantic=torch.randn(1, 16, 16)), tok)


def test_gradients_reach_every_module(debug_cfg):
    torch.manual_seed(0)
    m = PixWizard(debug_cfg).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x1, cond = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    text = fake_text(2, debug_cfg)
    # zero-init paths open one link per update: final layer -> block gates -> attention -> its gates
    # -> cross-attention projections -> the semantic encoder, so a few steps wake every module
    for step in range(6):
        opt.zero_grad()
        x0, t = torch.randn_like(x1), torch.rand(2) * 0.9
        xt = interpolate(x0, x1, t)
        flow_loss(m(xt, t, cond, text), x0, x1, xt, t, "x").mean().backward()
        if step < 5:
            opt.step()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"no gradient reaches: {dead}"
    # explicitly: the structural half of the patch embed (zero at init) gets a gradient too
    p, c = debug_cfg.model.patch_size, debug_cfg.model.in_channels
    assert m.dit.x_embedder.weight.grad[:, c * p * p:].abs().sum() > 0
    assert any(n.startswith("semantic.") for n, _ in m.named_parameters())


def test_sampler_keeps_exactly_k_and_trains_its_scorer():
    torch.manual_seed(0)
    s = TaskAwareSampler(dim=16, cond_dim=8, keep=5, tau=5.0)
    tokens = torch.randn(3, 12, 16, requires_grad=True)
    task = torch.randn(3, 8)
    s.train()
    sel = s(tokens, task, torch.Generator().manual_seed(0))
    assert sel.tokens.shape == (3, 5, 16) and sel.index.shape == (3, 5)
    assert all(len(set(row.tolist())) == 5 for row in sel.index)
    # kept tokens equal the originals in value (straight-through weight is exactly 1)
    ref = tokens.gather(1, sel.index.unsqueeze(-1).expand(-1, -1, 16))
    assert torch.allclose(sel.tokens, ref, atol=1e-6)
    sel.tokens.pow(2).sum().backward()
    assert s.out_conv[-1].weight.grad.abs().sum() > 0 and s.in_conv[1].weight.grad.abs().sum() > 0
    # evaluation: deterministic plain top-K of the scores
    s.eval()
    a, b = s(tokens, task), s(tokens, task)
    assert torch.equal(a.index, b.index)
    assert torch.equal(a.index.sort().values, a.logits.topk(5).indices.sort().values)


def test_sampler_off_and_keep_all(debug_cfg):
    cfg = dataclasses.replace(debug_cfg, model=dataclasses.replace(debug_cfg.model, sampler_enabled=False))
    m = PixWizard(cfg)
    assert all(blk.sampler is None for blk in m.dit.layers)
    assert not any("sampler" in n for n, _ in m.named_parameters())
    # a sampler that keeps at least every token keeps them all (any order), in training and evaluation
    s = TaskAwareSampler(dim=16, cond_dim=8, keep=50, tau=5.0)
    tokens, task = torch.randn(2, 12, 16), torch.randn(2, 8)
    for train in (True, False):
        sel = s.train(train)(tokens, task, torch.Generator().manual_seed(0))
        assert sel.index.shape == (2, 12) and all(sorted(row.tolist()) == list(range(12)) for row in sel.index)
        assert torch.allclose(sel.tokens, tokens.gather(1, sel.index.unsqueeze(-1).expand(-1, -1, 16)), atol=1e-6)
    # so a model whose sampler keeps every semantic token computes what the same weights do without
    # a sampler (cross-attention does not depend on the keys' order); the debug keep=8 does not
    torch.manual_seed(0)
    keep_all = PixWizard(dataclasses.replace(debug_cfg, model=dataclasses.replace(debug_cfg.model,
                                                                                  sampler_keep=10_000))).eval()
    randomize_zero_init(keep_all)
    state = keep_all.state_dict()
    m.load_state_dict({k: v for k, v in state.items() if ".sampler." not in k})
    keep_8 = PixWizard(debug_cfg).eval()
    keep_8.load_state_dict(state)
    kept = []
    hook = keep_all.dit.layers[0].sampler.register_forward_hook(lambda mod, args, out: kept.append(out.index.shape))
    x, cond, t, text = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.tensor([0.3, 0.8]), fake_text(2, debug_cfg)
    with torch.no_grad():
        a, off, few = keep_all(x, t, cond, text), m.eval()(x, t, cond, text), keep_8(x, t, cond, text)
    hook.remove()
    n_sem = kept[0][1]
    assert n_sem > debug_cfg.model.sampler_keep  # the semantic encoder gives more tokens than 8
    assert torch.allclose(a, off, atol=1e-5)
    assert (few - off).abs().max() > 1e-3


def test_mixed_size_batch_matches_single_items(debug_cfg):
    torch.manual_seed(0)
    m = PixWizard(debug_cfg).eval()
    randomize_zero_init(m)
    sizes = [(16, 24), (8, 12), (12, 8)]
    xs = [torch.randn(1, 3, h, w) for h, w in sizes]
    cs = [torch.randn(1, 3, h, w) for h, w in sizes]
    text = fake_text(3, debug_cfg)
    t = torch.tensor([0.3, 0.5, 0.7])
    H, W = 16, 24
    pad = lambda a: torch.nn.functional.pad(a, (0, W - a.shape[-1], 0, H - a.shape[-2]))  # noqa: E731
    batch = m(torch.cat([pad(x) for x in xs]), t, torch.cat([pad(c) for c in cs]), text, valid_sizes=sizes)
    for i, (h, w) in enumerate(sizes):
        single = m(xs[i], t[i:i + 1], cs[i], text.index(slice(i, i + 1)))
        assert torch.allclose(batch[i:i + 1, :, :h, :w], single, atol=1e-4), i


def test_rope_ntk_and_proportional_attention():
    assert ntk_theta(1e4, 32, 64, 64) == 1e4 and ntk_theta(1e4, 32, 256, 64) > 1e4
    f = rope_2d(3, 5, 16)
    assert f.shape == (15, 8) and torch.allclose(f.abs(), torch.ones(15, 8))
    # token (0, 0) is not rotated; rows rotate the first half of the channels, columns the second half
    # (token 4 is (0, 4), token 5 is (1, 0)), by the angle position * 1e4^(-2i / 8)
    assert torch.allclose(f[0], torch.ones(8, dtype=f.dtype))
    assert torch.equal(f[0, :4], f[4, :4]) and torch.equal(f[0, 4:], f[5, 4:])
    inv = 1e4 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    assert torch.allclose(f[5, :4].angle().double(), inv, atol=1e-6)
    assert torch.allclose(f[4, 4:].angle().double(), torch.remainder(4 * inv + torch.pi, 2 * torch.pi) - torch.pi,
                          atol=1e-6)


def test_proportional_attention_scales_the_self_attention_logits(debug_cfg):
    """q scale sqrt(log n / log n_train): 1 at the training token count, sharper above, softer below,
    per item in a mixed-size batch; it multiplies the self-attention logits (a temperature)."""
    torch.manual_seed(0)
    m = PixWizard(debug_cfg).eval()
    randomize_zero_init(m)
    n_train, p = debug_cfg.model.train_tokens, debug_cfg.model.patch_size  # 16 tokens = a 16x16 image
    seen = []
    hook = m.dit.layers[0].attention.register_forward_pre_hook(lambda mod, args: seen.append(args[2]))
    text = fake_text(1, debug_cfg)
    with torch.no_grad():
        for side in (8, 16, 32):
            m(torch.randn(1, 3, side, side), torch.rand(1), torch.randn(1, 3, side, side), text)
        sizes = [(32, 32), (8, 16)]
        m(torch.randn(2, 3, 32, 32), torch.rand(2), torch.randn(2, 3, 32, 32), fake_text(2, debug_cfg),
          valid_sizes=sizes)
    hook.remove()
    expect = [math.sqrt(math.log((side // p) ** 2) / math.log(n_train)) for side in (8, 16, 32)]
    assert seen[:3] == pytest.approx(expect) and expect[0] < 1 == expect[1] < expect[2]
    per_item = [math.sqrt(math.log(h * w // p ** 2) / math.log(n_train)) for h, w in sizes]
    assert seen[3].flatten().tolist() == pytest.approx(per_item)
    # the scale is a temperature on q.k: the same as multiplying the query norm's output, and the
    # per-item (tensor) path agrees with the single-size (float) path
    attn = m.dit.layers[0].attention
    x = torch.randn(2, 9, debug_cfg.model.dim)
    freqs = rope_2d(3, 3, debug_cfg.model.dim // debug_cfg.model.heads)
    with torch.no_grad():
        sharp = attn(x, freqs, 1.7)
        per_item = attn(x, freqs, torch.full((2, 1, 1, 1), 1.7))
        plain = attn(x, freqs, 1.0)
        attn.q_norm.weight.mul_(1.7)
        attn.q_norm.bias.mul_(1.7)
        hot = attn(x, freqs, 1.0)
    assert torch.allclose(sharp, hot, atol=1e-5) and torch.allclose(sharp, per_item, atol=1e-5)
    assert (sharp - plain).abs().max() > 1e-3


def test_base_2b_on_meta_device_has_about_2b_parameters():
    with torch.device("meta"):
        dit = PixWizardDiT(preset("base-2b").model)
    n = sum(p.numel() for p in dit.parameters() if p.requires_grad)
    assert 1.95e9 < n < 2.05e9, n


def test_short_overfit_lowers_loss_tenfold(debug_cfg):
    torch.manual_seed(0)
    m = PixWizard(debug_cfg).train()
    opt = torch.optim.AdamW(m.parameters(), lr=5e-3, weight_decay=0)
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
    cond = (x1 + 0.3 * torch.randn(1, 3, 16, 16, generator=g)).clamp(-1, 1)
    text = fake_text(1, debug_cfg)
    fixed = [(torch.randn(1, 3, 16, 16, generator=g), torch.rand(1, generator=g) * 0.9) for _ in range(4)]

    def eval_loss():
        with torch.no_grad():
            return sum(flow_loss(m(interpolate(x0, x1, t), t, cond, text), x0, x1, interpolate(x0, x1, t), t, "x")
                       .item() for x0, t in fixed) / len(fixed)

    first = eval_loss()
    for _ in range(150):
        x0, t = torch.randn(8, 3, 16, 16, generator=g), torch.rand(8, generator=g) * 0.9
        xt = interpolate(x0, x1.expand(8, -1, -1, -1), t)
        loss = flow_loss(m(xt, t, cond.expand(8, -1, -1, -1), text.index([0] * 8)), x0, x1, xt, t, "x").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert eval_loss() < first / 10, (first, eval_loss())


@pytest.mark.parametrize("length", [1, 7, 32])
def test_short_kv_attention_equals_sdpa(length):
    from pixwizard.model.attention import short_kv_attention

    g = torch.Generator().manual_seed(length)
    q = torch.randn(2, 4, 10, 8, generator=g).transpose(1, 2).contiguous().transpose(1, 2)  # a strided view
    k, v = torch.randn(2, 2, length, 8, generator=g), torch.randn(2, 2, length, 8, generator=g)
    mask = torch.rand(2, length, generator=g) > 0.3
    mask[:, 0] = True
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], enable_gqa=True)
    assert torch.allclose(short_kv_attention(q, k, v, mask), ref, atol=1e-5)
    assert torch.allclose(short_kv_attention(q, k, v, None),
                          torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True), atol=1e-5)


def test_condition_skip_starts_as_the_identity(debug_cfg):
    cfg = dataclasses.replace(debug_cfg, model=dataclasses.replace(debug_cfg.model, condition_skip=True))
    torch.manual_seed(0)
    m = PixWizard(cfg)
    cond = torch.randn(2, 3, 16, 24)
    out = m(torch.randn(2, 3, 16, 24), torch.rand(2), cond, fake_text(2, cfg))
    assert torch.equal(out, cond)  # zero-initialised final layer: the clean estimate is the condition
    randomize_zero_init(m)
    x, t, text = torch.randn(2, 3, 16, 24), torch.rand(2), fake_text(2, cfg)
    plain = PixWizard(debug_cfg)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("skip_gate.")})
    m.eval(), plain.eval()  # the sampler's Gumbel noise is for training only
    gate = 1 + m.skip_gate(text.pooled)  # per item and channel, from the task embedding
    assert gate.shape == (2, 3) and not torch.allclose(gate, torch.ones_like(gate))
    assert torch.allclose(m(x, t, cond, text), plain(x, t, cond, text) + gate[:, :, None, None] * cond, atol=1e-5)
    # a dropped condition (zeros) adds nothing
    assert torch.allclose(m(x, t, torch.zeros_like(cond), text), plain(x, t, torch.zeros_like(cond), text))


def test_condition_skip_needs_x_prediction_and_structure(debug_cfg):
    from pixwizard.config import PixWizardConfig

    d = debug_cfg.to_dict()
    d["model"]["condition_skip"] = True
    d["flow"]["prediction"] = "velocity"
    with pytest.raises(ValueError, match="needs flow.prediction"):
        PixWizardConfig.from_dict(d)
    d["flow"]["prediction"] = "x"
    d["model"]["use_structural"] = False
    with pytest.raises(ValueError, match="needs model.use_structural"):
        PixWizardConfig.from_dict(d)
