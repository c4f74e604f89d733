"""Time sampling for training and time grids for sampling (convention in ``path.py``)."""

from __future__ import annotations

import torch

from pixwizard.config import FlowConfig


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Spend more time near noise for shift > 1 (SD3's sigma shift, with sigma = 1 - t)."""
    if shift == 1.0:
        return t
    sigma = 1 - t
    sigma = shift * sigma / (1 + (shift - 1) * sigma)
    return 1 - sigma


def sample_training_times(n: int, cfg: FlowConfig, generator: torch.Generator | None = None,
                          device=None) -> torch.Tensor:
    """t [n] for training: ``uniform`` (the paper), ``logit_normal`` (sigmoid of N(mean, std)), or
    ``shifted`` (uniform passed through :func:`shift_time`); then, when ``cfg.grid_share`` > 0, that
    share of the items (drawn per item) takes a time of :func:`sampler_times` instead. With
    ``grid_share`` 0 no further random numbers are drawn (runs repeat as before)."""
    if cfg.time_sampling == "uniform":
        t = torch.rand(n, generator=generator, device=device)
    elif cfg.time_sampling == "logit_normal":
        t = torch.sigmoid(cfg.logit_mean + cfg.logit_std * torch.randn(n, generator=generator, device=device))
    elif cfg.time_sampling == "shifted":
        t = shift_time(torch.rand(n, generator=generator, device=device), cfg.time_shift)
    else:
        raise ValueError(f"unknown time sampling {cfg.time_sampling!r}")
    if cfg.grid_share > 0:
        grid = sampler_times(cfg).to(t.device)
        use = torch.rand(n, generator=generator, device=device) < cfg.grid_share
        pick = torch.randint(len(grid), (n,), generator=generator, device=device)
        t = torch.where(use, grid[pick], t)
    return t


def sampler_times(cfg: FlowConfig) -> torch.Tensor:
    """The distinct times at which the Euler sampler evaluates the model: the start of every step of
    the grids for ``cfg.steps`` and for each ``task_sampling`` entry, after ``sample_shift``."""
    steps = {cfg.steps, *(s for s, _ in cfg.task_sampling.values())}
    times = torch.cat([time_grid(s, cfg.sample_shift)[:-1] for s in sorted(steps)])
    return torch.unique(times.round(decimals=6))


def time_grid(steps: int, shift: float = 1.0, device=None) -> torch.Tensor:
    """steps + 1 times from 0 (noise) to 1 (data)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return shift_time(torch.linspace(0.0, 1.0, steps + 1, device=device), shift)
