"""The learning-rate schedule as a pure function of the global step (see TrainConfig's docstring)."""

from __future__ import annotations

from pixwizard.train.config import TrainConfig


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """LR of optimiser step ``step`` (0-based): the stage's base LR x linear warm-up over the
    stage's first ``warmup_steps`` x linear decay to 0 over the last ``decay_fraction`` of the run."""
    index, local = cfg.stage_at(step)
    stage = cfg.stages[index]
    lr = stage.lr
    if stage.warmup_steps > 0 and local < stage.warmup_steps:
        lr *= (local + 1) / stage.warmup_steps
    total = cfg.total_steps
    decay_steps = round(cfg.decay_fraction * total)
    start = total - decay_steps
    if decay_steps > 0 and step >= start:
        lr *= (total - step) / (decay_steps + 1)
    return lr
