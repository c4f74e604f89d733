"""ODE samplers as pure functions over a velocity function ``v(x, t) -> velocity`` (t [B])."""

from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _t(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.expand(x.shape[0]).to(x.device)


def euler(v: VelocityFn, x0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Explicit Euler from times[0] to times[-1]."""
    x = x0
    for a, b in zip(times[:-1], times[1:]):
        x = x + (b - a) * v(x, _t(a, x))
    return x


def heun(v: VelocityFn, x0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Heun's second-order method; the last step is Euler (the endpoint t=1 can be singular for
    x-prediction)."""
    x = x0
    n = len(times) - 1
    for i, (a, b) in enumerate(zip(times[:-1], times[1:])):
        d = v(x, _t(a, x))
        x_next = x + (b - a) * d
        if i < n - 1:
            x_next = x + (b - a) * 0.5 * (d + v(x_next, _t(b, x)))
        x = x_next
    return x


SAMPLERS: dict[str, Callable[[VelocityFn, torch.Tensor, torch.Tensor], torch.Tensor]] = {"euler": euler, "heun": heun}


def get_sampler(name: str):
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}") from None
