"""Typed training configuration: a run is a list of stages, presets are functions.

Conventions:
- ``batch_size`` is the *global* batch (all ranks, all accumulation micro-steps together); each
  optimiser step sees exactly ``batch_size`` samples. ``micro_batch`` (per rank) sets gradient
  accumulation: ``batch_size = world * micro_batch * accumulation``.
- A stage runs ``steps`` optimiser steps at its own base learning rate, over square crops whose side is
  drawn per batch from ``resolutions`` (pixels; every side a multiple of patch size x codec
  downsample), so a batch holds one size (resolution buckets).
- Learning rate at a global step: ``stage.lr`` x linear warm-up over the stage's first
  ``warmup_steps`` x a linear decay to 0 over the last ``decay_fraction`` of the *whole run*
  (constant before it).
- Mixing (stage 1 balanced, stage 2 weighted with text-to-image 1:1) is done by the data recipe
  (``pixwizard.data.recipe`` / ``pixwizard.data.mixture``) when the stage's dataset is built; a stage
  declares the mixture it expects (``mixture``) and the trainer checks the dataset manifest
  against it before training (see :func:`pixwizard.train.data.check_mixture`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from pixwizard.config import PixWizardConfig

Mixture = Literal["balanced", "weighted", "any"]
Parallel = Literal["auto", "none", "ddp", "fsdp"]
Precision = Literal["auto", "fp32", "bf16"]


@dataclass
class StageConfig:
    """One training stage (DESIGN section 7)."""

    name: str
    steps: int  # optimiser steps in this stage
    lr: float = 1e-4  # base (constant) learning rate of the stage
    resolutions: tuple[int, ...] = (64,)  # square crop sides in pixels, one drawn per batch
    mixture: Mixture = "any"  # what the stage's dataset manifest must show (checked, never fixed up)
    t2i_share: float = 0.5  # weighted: expected share of text-to-image items (0.5 = 1:1 with the rest)
    warmup_steps: int = 0
    init: str | None = None  # model checkpoint loaded when the stage starts (None = keep current weights)
    data: str | None = None  # dataset directory of the stage (None = the run's ``--data``)

    def __post_init__(self) -> None:
        self.resolutions = tuple(int(r) for r in self.resolutions)
        if self.steps < 0:
            raise ValueError(f"stage {self.name!r}: steps must be >= 0, got {self.steps}")
        if not self.resolutions or min(self.resolutions) < 8:
            raise ValueError(f"stage {self.name!r}: resolutions must be sides >= 8 px, got {self.resolutions}")
        if self.lr <= 0:
            raise ValueError(f"stage {self.name!r}: lr must be > 0, got {self.lr}")
        if self.mixture not in ("balanced", "weighted", "any"):
            raise ValueError(f"stage {self.name!r}: mixture must be balanced, weighted or any, got {self.mixture!r}")


@dataclass
class TrainConfig:
    """A full training run."""

    name: str
    model: str = "tiny"  # a pixwizard.config preset name
    # Changes to that preset, as a nested dict of PixWizardConfig fields, e.g.
    # {"model": {"use_semantic": false}} (ablations); validated when the run starts.
    model_overrides: dict[str, Any] = field(default_factory=dict)
    stages: list[StageConfig] = field(default_factory=list)
    batch_size: int = 32  # global batch per optimiser step
    micro_batch: int | None = None  # per-rank micro-batch (None = batch_size / world, no accumulation)
    seed: int = 0
    precision: Precision = "auto"  # bf16 autocast only where native (pixwizard.runtime)
    parallel: Parallel = "auto"  # auto = DDP when launched on several processes, else none
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 2.0  # max global grad norm (paper); 0 disables clipping
    decay_fraction: float = 0.0  # linear LR decay to 0 over this last fraction of all steps
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # effective decay min(decay, (1 + n) / (10 + n)) after n updates
    loss_weights: dict[str, float] = field(default_factory=dict)  # task id -> loss multiplier (default 1)
    # positions where the target differs from the input (mean |target - input| over channels above
    # change_threshold, images in [-1, 1]) count 1 + change_weight times in each item's loss; 0 = plain mean
    change_weight: float = 0.0
    change_threshold: float = 0.1
    change_tasks: list[str] = field(default_factory=list)  # the tasks it applies to (empty = every task)
    checkpoint_every: int = 1000  # optimiser steps between checkpoints
    keep_last: int = 3  # checkpoints kept on disk
    log_every: int = 10  # steps between JSONL metric lines
    text_cache_size: int = 16384  # instructions whose encodings stay cached (each encoded alone)
    # Photo items made on the fly (pixwizard.train.online): a data recipe JSON naming photo tasks,
    # and the share of each batch they fill (the rest comes from the stage's shards).
    online_recipe: str | None = None
    online_share: float = 0.5

    def __post_init__(self) -> None:
        self.stages = [s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages]
        self.betas = tuple(self.betas)
        if not self.stages:
            raise ValueError(f"train config {self.name!r} has no stages")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.checkpoint_every < 1 or self.keep_last < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every, keep_last and log_every must be >= 1")
        if self.online_recipe is not None and not 0.0 < self.online_share <= 1.0:
            raise ValueError(f"online_share must be in (0, 1], got {self.online_share}")
        if not self.change_weight >= 0 or not self.change_threshold >= 0:
            raise ValueError(f"change_weight and change_threshold must be >= 0, got {self.change_weight} "
                             f"and {self.change_threshold}")
        from pixwizard.tasks import task_ids

        self.change_tasks = list(self.change_tasks)
        unknown = sorted(set(self.change_tasks) - set(task_ids()))
        if unknown:
            raise ValueError(f"change_tasks names unknown task(s) {', '.join(unknown)}; see `pixwizard tasks`")
        for task, w in self.loss_weights.items():
            if w < 0:
                raise ValueError(f"loss weight of task {task!r} must be >= 0, got {w}")

    def model_config(self) -> "PixWizardConfig":
        """The model preset with ``model_overrides`` applied (unknown fields raise ValueError)."""
        from pixwizard.config import PixWizardConfig, preset as model_preset

        base = model_preset(self.model).to_dict()
        return PixWizardConfig.from_dict(merge_overrides(base, self.model_overrides))

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> tuple[int, int]:
        """(stage index, step within the stage) of global optimiser step ``step`` (0-based)."""
        start = 0
        for i, s in enumerate(self.stages):
            if step < start + s.steps:
                return i, step - start
            start += s.steps
        raise ValueError(f"step {step} is past the end of the run ({self.total_steps} steps)")

    def stage_start(self, index: int) -> int:
        return sum(s.steps for s in self.stages[:index])

    def with_total_steps(self, total: int) -> "TrainConfig":
        """The same plan rescaled to ``total`` steps (each stage keeps its share, at least 1 step)."""
        if total < len(self.stages):
            raise ValueError(f"--steps {total} is fewer than the {len(self.stages)} stages of {self.name!r}")
        old = self.total_steps
        steps = [max(1, round(s.steps * total / old)) for s in self.stages]
        steps[-1] = max(1, total - sum(steps[:-1]))
        return dataclasses.replace(self, stages=[dataclasses.replace(s, steps=n) for s, n in zip(self.stages, steps)])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig option(s): {', '.join(unknown)}")
        stage_names = {f.name for f in dataclasses.fields(StageConfig)}
        for s in d.get("stages", []):
            bad = sorted(set(s) - stage_names)
            if bad:
                raise ValueError(f"unknown StageConfig option(s): {', '.join(bad)}")
        return cls(**d)


def merge_overrides(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, nested mappings key by key (``changes`` wins)."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = merge_overrides(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ----------------------------------------------------------------------------- presets


def debug() -> TrainConfig:
    """Seconds on a CPU: the debug model, two tiny stages (tests, resume checks)."""
    return TrainConfig(
        name="debug", model="debug", batch_size=4, seed=0, precision="fp32", ema_decay=0.9,
        decay_fraction=0.25, checkpoint_every=2, keep_last=2, log_every=1, text_cache_size=256,
        stages=[StageConfig("stage1", steps=4, lr=1e-3, resolutions=(32,)),
                StageConfig("stage2", steps=4, lr=5e-4, resolutions=(32, 48))],
    )


def cpu_tiny() -> TrainConfig:
    """The CPU run for the shipped model (DESIGN section 10): tiny model, x-prediction, batch 32,
    AdamW 1e-3 constant then linear decay over the last 20%; stage 1 on 64-px crops of a balanced
    set, stage 2 on 64-128-px crops of a weighted set (t2i 1:1). Rescale with ``--steps``."""
    return TrainConfig(
        name="cpu-tiny", model="tiny", batch_size=32, precision="auto", ema_decay=0.999,
        decay_fraction=0.2, checkpoint_every=500, keep_last=3, log_every=20,
        stages=[StageConfig("stage1", steps=9000, lr=1e-3, resolutions=(64,), mixture="balanced"),
                StageConfig("stage2", steps=3000, lr=1e-3, resolutions=(64, 96, 128), mixture="weighted")],
    )


def cpu_tiny_anneal() -> TrainConfig:
    """A campaign stretch that continues a trained file (``--init``): one stage on 64-128-px crops
    of any mix, a short warm-up then a linear decay to 0 over the whole stretch (the part of the
    full plan that paid in the campaign: stage 2 with the decay). 80 % of the training times are
    drawn at the sampler's own times (``flow.grid_share``: 0.5 gave campaign stretch 8 +0.64 dB
    restoration against the same stretch without it; 0.8 beat 0.5 by 0.09 dB at equal compute in
    stretch 10). Pick ``--steps`` from the machine's samples/s; ``--lr`` sets the peak (default 2e-4)."""
    return TrainConfig(
        name="cpu-tiny-anneal", model="tiny", model_overrides={"flow": {"grid_share": 0.8}},
        batch_size=32, precision="auto", ema_decay=0.999,
        decay_fraction=1.0, checkpoint_every=100, keep_last=3, log_every=10,
        stages=[StageConfig("anneal", steps=1500, lr=2e-4, resolutions=(64, 96, 128), warmup_steps=50)],
    )


def gpu_tiny_9min() -> TrainConfig:
    """One H100 for about 9 minutes (use with ``--minutes 9``): the tiny model in bf16, batch 256."""
    return TrainConfig(
        name="gpu-tiny-9min", model="tiny", batch_size=256, precision="bf16", ema_decay=0.999,
        decay_fraction=0.2, checkpoint_every=500, keep_last=2, log_every=20,
        stages=[StageConfig("stage1", steps=3000, lr=1e-3, resolutions=(64,), mixture="balanced", warmup_steps=100),
                StageConfig("stage2", steps=1000, lr=1e-3, resolutions=(64, 96, 128), mixture="weighted")],
    )


# The paper's stage-1 length: ~20k samples per task, 4 epochs, global batch 1024, over our task list.
_PAPER_TASKS = 44
_PAPER_STAGE1_STEPS = _PAPER_TASKS * 20_000 * 4 // 1024


def paper_stage1() -> TrainConfig:
    """DESIGN section 7, stage 1 for base-2b: balanced tasks, 512-768 px, AdamW 1e-4 constant, no
    weight decay, clip 2.0, EMA 0.9999, bf16, global batch 1024, FSDP2."""
    return TrainConfig(
        name="paper-stage1", model="base-2b", batch_size=1024, micro_batch=4, precision="bf16", parallel="fsdp",
        ema_decay=0.9999, grad_clip=2.0, checkpoint_every=500, keep_last=3, log_every=10,
        stages=[StageConfig("stage1", steps=_PAPER_STAGE1_STEPS, lr=1e-4, resolutions=(512, 640, 768),
                            mixture="balanced")],
    )


def paper_stage2() -> TrainConfig:
    """DESIGN section 7, stage 2 for base-2b: the weighted mixture with t2i 1:1, 768-1024 px, LR 5e-5;
    start it with ``--init`` = the stage-1 export. The paper does not pin its length: 20k steps
    here is our choice; rescale with ``--steps``."""
    return TrainConfig(
        name="paper-stage2", model="base-2b", batch_size=1024, micro_batch=2, precision="bf16", parallel="fsdp",
        ema_decay=0.9999, grad_clip=2.0, checkpoint_every=500, keep_last=3, log_every=10,
        stages=[StageConfig("stage2", steps=20_000, lr=5e-5, resolutions=(768, 896, 1024), mixture="weighted")],
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "debug": debug, "cpu-tiny": cpu_tiny, "cpu-tiny-anneal": cpu_tiny_anneal, "gpu-tiny-9min": gpu_tiny_9min,
    "paper-stage1": paper_stage1, "paper-stage2": paper_stage2,
}


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
