import math

import pytest
import torch

from pixwizard.config import FlowConfig
from pixwizard.flow import (apply_dropout, change_weights, combine, draw_dropout, euler, flow_loss, get_sampler, heun, interpolate,
                            item_generators, needed_branches, noise_like, sample_training_times, sampler_times,
                            sampling_velocity, shift_time, target_velocity, time_grid, to_velocity, training_target,
                            velocity_from_x, x_from_velocity)

# t across [0, 1], through the x-prediction clamp region t > 1 - t_eps (t_eps = 0.05) up to t = 1
TIMES = [0.0, 0.2, 0.5, 0.7, 0.9, 0.95, 0.96, 0.97, 0.99, 1.0]


def test_time_convention_endpoints():
    x0, x1 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    assert torch.equal(interpolate(x0, x1, torch.zeros(3)), x0)
    assert torch.allclose(interpolate(x0, x1, torch.ones(3)), x1)
    # moving along the target velocity from any point on the path reaches the data at t = 1
    t = torch.tensor([0.1, 0.5, 0.9])
    xt = interpolate(x0, x1, t)
    assert torch.allclose(x_from_velocity(target_velocity(x0, x1), xt, t), x1, atol=1e-6)


def test_x_prediction_converts_to_the_true_velocity():
    x0, x1 = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    t = torch.tensor([0.0, 0.3, 0.6, 0.9])
    xt = interpolate(x0, x1, t)
    v = velocity_from_x(x1, xt, t, t_eps=0.01)
    assert torch.allclose(v, x1 - x0, atol=1e-5)
    # the sampling conversion is exact up to t = 0.99 (the training one is clamped above 1 - t_eps)
    t = torch.tensor([0.5, 0.9, 0.97, 0.99])
    xt = interpolate(x0, x1, t)
    assert torch.allclose(sampling_velocity("x", x1, xt, t), x1 - x0, atol=1e-3)
    clamped = to_velocity("x", x1, xt, t, 0.05)
    assert torch.allclose(clamped[:2], x1[:2] - x0[:2], atol=1e-4)
    assert torch.allclose(clamped[2:], (x1[2:] - x0[2:]) * torch.tensor([0.03, 0.01]).view(2, 1, 1, 1) / 0.05,
                          atol=1e-4)
    assert torch.equal(to_velocity("velocity", v, xt, t, 0.01), v)
    with pytest.raises(ValueError, match="prediction"):
        to_velocity("eps", v, xt, t, 0.01)


def test_loss_is_zero_for_the_exact_prediction_and_positive_otherwise():
    n = len(TIMES)
    x0, x1 = torch.randn(n, 3, 8, 8), torch.randn(n, 3, 8, 8)
    t = torch.tensor(TIMES)
    xt = interpolate(x0, x1, t)
    assert flow_loss(x1 - x0, x0, x1, xt, t, "velocity").abs().max() < 1e-10
    # the exact clean image costs nothing at every t, the clamp region included (it cost 0.35 at
    # t = 0.97 and 1.3 at 0.99 when only the prediction side was clamped)
    assert flow_loss(x1, x0, x1, xt, t, "x", t_eps=0.05).abs().max() < 1e-8
    assert (flow_loss(torch.zeros_like(x1), x0, x1, xt, t, "x") > 0.1).all()
    mask = torch.zeros(n, 1, 8, 8)
    mask[..., :4, :] = 1
    bad = (x1 - x0).clone()
    bad[..., 4:, :] += 5  # errors only outside the mask do not count
    assert flow_loss(bad, x0, x1, xt, t, "velocity", mask=mask).abs().max() < 1e-10
    with pytest.raises(ValueError, match="prediction"):
        training_target("eps", x0, x1, xt, t, 0.05)


def test_change_weights_count_the_changed_positions_more():
    inputs = torch.zeros(2, 3, 8, 8)
    targets = inputs.clone()
    targets[0, :, 2:4, 2:4] = 0.5  # item 0: a small box changes; item 1: nothing changes
    targets[0, 0, 6, 6] = 0.2  # under the threshold once averaged over channels (0.067 < 0.1)
    w = change_weights(inputs, targets, (8, 8), 4.0, 0.1)
    assert w.shape == (2, 1, 8, 8)
    assert (w[0, 0, 2:4, 2:4] == 5).all() and w[0].sum() == 64 + 4 * 4 and (w[1] == 1).all()
    # a coarser latent: a position counts as changed when any pixel under it changed
    coarse = change_weights(inputs, targets, (4, 4), 4.0, 0.1)
    assert coarse[0, 0, 1, 1] == 5 and coarse[0].sum() == 16 + 4 and (coarse[1] == 1).all()
    # the weighted mean: uniform weights give the plain loss; an error inside the change counts more
    x0, x1 = torch.randn(2, 3, 8, 8), targets
    t = torch.tensor([0.5, 0.5])
    xt = interpolate(x0, x1, t)
    bad = x1.clone()
    bad[:, :, 2:4, 2:4] += 1.0
    plain = flow_loss(bad, x0, x1, xt, t, "x")
    assert torch.allclose(flow_loss(bad, x0, x1, xt, t, "x", mask=torch.ones(2, 1, 8, 8)), plain)
    weighted = flow_loss(bad, x0, x1, xt, t, "x", mask=w)
    assert torch.allclose(weighted[1], plain[1]) and weighted[0] > 3 * plain[0]
    per_item = change_weights(inputs, targets, (8, 8), torch.tensor([0.0, 4.0]), 0.1)  # one weight per item
    assert (per_item == 1).all()  # item 0's weight is 0, item 1 changes nothing
    with pytest.raises(ValueError, match="3 weights for 2 items"):
        change_weights(inputs, targets, (8, 8), torch.tensor([1.0, 1.0, 1.0]), 0.1)
    with pytest.raises(ValueError, match="one shape"):
        change_weights(inputs, targets[:, :, :4], (8, 8), 4.0, 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        change_weights(inputs, targets, (8, 8), -1.0, 0.1)


@pytest.mark.parametrize("t", [0.5, 0.9, 0.95, 0.97, 0.99, 1.0])
def test_x_prediction_loss_is_the_clean_image_error_weighted_by_the_clamped_time(t):
    """x-prediction with a velocity loss: |x1_hat - x1|^2 / max(1 - t, t_eps)^2 at every t; the
    minimum is at x1 (not at x_t + t_eps (x1 - x0) in the clamp region)."""
    x0, x1 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    err = 0.1 * torch.randn(2, 3, 8, 8)
    tt = torch.full((2,), t)
    xt = interpolate(x0, x1, tt)
    loss = flow_loss(x1 + err, x0, x1, xt, tt, "x", t_eps=0.05)
    expect = (err ** 2).flatten(1).mean(1) / max(1 - t, 0.05) ** 2
    assert torch.allclose(loss, expect, rtol=1e-3)
    # and below the clamp region the target is the plain velocity x1 - x0
    if t <= 0.95:
        assert torch.allclose(training_target("x", x0, x1, xt, tt, 0.05), x1 - x0, atol=1e-4)
    assert torch.equal(training_target("velocity", x0, x1, xt, tt, 0.05), x1 - x0)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
@pytest.mark.parametrize("steps,shift", [(1, 1.0), (4, 1.0), (21, 1.0), (30, 1.0), (50, 1.0), (50, 3.0), (50, 0.3)])
def test_samplers_land_on_an_oracle_x_prediction(sampler, steps, shift):
    """A network that predicts the clean image exactly is sampled onto it in any number of steps."""
    x0, x1 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    v = lambda x, t: sampling_velocity("x", x1, x, t)  # noqa: E731
    out = get_sampler(sampler)(v, x0, time_grid(steps, shift=shift))
    assert (out - x1).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["uniform", "logit_normal", "shifted"])
def test_training_times_in_range_and_seeded(kind):
    cfg = FlowConfig(time_sampling=kind, time_shift=3.0)
    a = sample_training_times(5000, cfg, torch.Generator().manual_seed(1))
    b = sample_training_times(5000, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    if kind == "logit_normal":  # mean -0.8 in logit space puts the median below 0.5
        assert abs(a.median().item() - 1 / (1 + math.exp(0.8))) < 0.02
    if kind == "shifted":  # shift > 1 spends more time near noise (t = 0)
        assert a.mean() < 0.4


def test_grid_share_draws_that_share_at_the_sampler_times():
    """grid_share moves that share of the training times onto the sampler's own evaluation times
    (the grids of steps and of every per-task entry); 0 draws exactly what it drew before."""
    cfg = FlowConfig(steps=4, task_sampling={"sr_x4": [2, 4], "t2i": [3, 1]})
    assert torch.allclose(sampler_times(cfg), torch.tensor([0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75]))
    base = sample_training_times(4000, FlowConfig(), torch.Generator().manual_seed(2))
    same = sample_training_times(4000, FlowConfig(grid_share=0.0), torch.Generator().manual_seed(2))
    assert torch.equal(base, same)
    mixed = sample_training_times(4000, FlowConfig(grid_share=0.5), torch.Generator().manual_seed(2))
    on_grid = torch.isin(mixed, sampler_times(FlowConfig()))
    assert 0.45 < on_grid.float().mean().item() < 0.55  # the logit-normal never hits a grid time exactly
    assert torch.equal(mixed[~on_grid], base[~on_grid])  # the rest keep their logit-normal draws
    only = sample_training_times(4000, FlowConfig(grid_share=1.0), torch.Generator().manual_seed(3))
    counts = torch.stack([(only == g).sum() for g in sampler_times(FlowConfig())])
    assert counts.sum() == 4000 and counts.min() > 900  # all four times of the 4-step grid, evenly
    with pytest.raises(ValueError, match="grid_share"):
        FlowConfig(grid_share=1.5)


def test_time_grid_and_shift():
    g = time_grid(4)
    assert torch.allclose(g, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    s = time_grid(4, shift=3.0)
    assert s[0] == 0 and s[-1] == 1 and (s[1:-1] < g[1:-1]).all() and (s.diff() > 0).all()
    assert torch.equal(shift_time(g, 1.0), g)
    with pytest.raises(ValueError):
        time_grid(0)


def test_samplers_integrate_a_known_flow():
    # dx/dt = -x has solution x(1) = x(0) * e^-1; Heun is much closer than Euler at few steps
    x0 = torch.ones(1, 1, 1, 1)
    v = lambda x, t: -x  # noqa: E731
    times = time_grid(8)
    e, h = euler(v, x0, times).item(), heun(v, x0, times).item()
    exact = math.exp(-1)
    assert abs(h - exact) < abs(e - exact) and abs(e - exact) < 0.03
    # a constant velocity is integrated exactly by both
    c = lambda x, t: torch.full_like(x, 2.0)  # noqa: E731
    assert torch.allclose(euler(c, x0, times), x0 + 2) and torch.allclose(heun(c, x0, times), x0 + 2)


def test_dropout_rates_match_the_config():
    cfg = FlowConfig(drop_text=0.05, drop_image=0.05, drop_both=0.05)
    n = 200_000
    dt, di = draw_dropout(n, cfg, torch.Generator().manual_seed(0))
    text_only = (dt & ~di).float().mean().item()
    image_only = (di & ~dt).float().mean().item()
    both = (dt & di).float().mean().item()
    for rate in (text_only, image_only, both):
        assert abs(rate - 0.05) < 0.003
    # the image is kept ~90% of the time (the original inverted this coin)
    assert abs((~di).float().mean().item() - 0.90) < 0.004


def test_apply_dropout_nulls_text_and_image():
    cond = torch.ones(3, 3, 4, 4)
    texts, c = apply_dropout(["a", "b", "c"], cond, torch.tensor([True, False, False]),
                             torch.tensor([False, True, False]))
    assert texts == ["", "b", "c"]
    assert c[1].abs().sum() == 0 and torch.equal(c[0], cond[0]) and torch.equal(c[2], cond[2])


def test_guidance_combination_and_branch_skipping():
    full, img, null = torch.randn(3, 2, 4, 4).unbind(0)
    assert needed_branches(1.0, 1.0) == ("full",)
    assert needed_branches(3.0, 1.0) == ("full", "image")
    assert needed_branches(3.0, 1.5) == ("full", "image", "null")
    assert torch.equal(combine({"full": full}, 1.0, 1.0), full)
    # the skipped null branch cancels exactly when wI = 1
    v3 = combine({"full": full, "image": img, "null": null}, 4.0, 1.0)
    v2 = combine({"full": full, "image": img}, 4.0, 1.0)
    assert torch.allclose(v2, v3, atol=1e-6)
    wI, wT = 1.5, 4.0
    ref = null + wI * (img - null) + wT * (full - img)
    assert torch.allclose(combine({"full": full, "image": img, "null": null}, wT, wI), ref)


def test_noise_is_per_item():
    a = noise_like((2, 3, 4, 4), item_generators([7, 8]))
    b = noise_like((1, 3, 4, 4), item_generators([8]))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    with pytest.raises(ValueError, match="one generator per item"):
        noise_like((2, 3, 4, 4), item_generators([1]))
