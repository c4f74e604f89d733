"""Typed configuration of a fine-tuning run and of the new task it teaches."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pixwizard.tasks.spec import DOMAINS

Mode = Literal["lora", "full"]

# The DiT's attention and FFN projections (module names inside each ``dit.layers.N``).
DEFAULT_TARGETS: tuple[str, ...] = ("attention.wqkv", "attention.wo", "attention.wkv_y", "attention.wkv_ii",
                                    "feed_forward.w13", "feed_forward.w2")
# Headline metrics per target codec (names understood by pixwizard.eval); image tasks score PSNR/SSIM.
CODEC_METRICS: dict[str, tuple[str, ...]] = {
    "image": ("psnr", "ssim"), "mask": ("ciou", "giou"), "overlay": ("ciou", "giou"), "box": ("box_acc50",),
    "depth": ("absrel", "rmse", "delta1"), "normals": ("mean_angle", "median_angle", "pct_11_25"),
    "semseg": ("miou", "pixel_acc"),
}
_ID = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


@dataclass
class NewTaskConfig:
    """A task taught by fine-tuning: its id, domain, target codec and how users ask for it.

    ``phrasings`` are instruction templates without slots ("remove the sepia tint", ...); the
    first fifth (every 5th) is held out from routing as for the shipped tasks. A pair without its
    own instruction is trained with a phrasing drawn from this list."""

    name: str
    domain: str = "restoration"
    codec: str = "image"
    phrasings: tuple[str, ...] = ()
    title: str = ""
    source: str = "photo"
    metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.phrasings = tuple(str(p).strip() for p in self.phrasings if str(p).strip())
        self.metrics = tuple(self.metrics)
        if not _ID.match(self.name):
            raise ValueError(f"task name {self.name!r}: use 2-48 lower-case letters, digits and _ (starting with a letter)")
        if self.domain not in DOMAINS:
            raise ValueError(f"task {self.name!r}: unknown domain {self.domain!r}; expected one of {DOMAINS}")
        if self.codec not in CODEC_METRICS:
            raise ValueError(f"task {self.name!r}: unknown codec {self.codec!r}; expected one of {tuple(CODEC_METRICS)}")
        if not self.phrasings:
            raise ValueError(f"task {self.name!r}: give at least one phrasing (how a user asks for it)")
        bad = [p for p in self.phrasings if "{" in p or "}" in p]
        if bad:
            raise ValueError(f"task {self.name!r}: phrasings take no slots, got {bad[0]!r}")
        if not self.title:
            self.title = self.name.replace("_", " ").capitalize()
        if not self.metrics:
            self.metrics = CODEC_METRICS[self.codec]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NewTaskConfig":
        return cls(**_known(cls, d, "task"))

    @classmethod
    def from_file(cls, path: str | Path) -> "NewTaskConfig":
        return cls.from_dict(_read_json(path, "task config"))


@dataclass
class FinetuneConfig:
    """One fine-tuning run.

    ``steps`` optimiser steps of ``batch_size`` random ``size``-px crops (input and target
    cropped at one offset; pairs smaller than ``size`` are resized up to it), AdamW at ``lr`` with
    ``warmup_steps`` of linear warm-up and a linear decay to 0 over the last ``decay_fraction``.
    LoRA: rank ``rank``, scale ``alpha / rank``, on ``targets`` of every DiT block, base weights
    frozen. Full: every trainable weight. ``holdout`` pairs (a fraction < 1 or a count >= 1) are
    kept out of training and scored before and after. ``ema_decay`` 0 exports the last weights.
    ``parallel``: how several processes (torchrun) share the work: DDP (``auto``) or FSDP2."""

    task: NewTaskConfig
    mode: Mode = "lora"
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 20
    decay_fraction: float = 0.2
    size: int = 128
    holdout: float = 0.1
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    ema_decay: float = 0.0
    grad_clip: float = 2.0
    weight_decay: float = 0.0
    checkpoint_every: int = 100
    keep_last: int = 2
    log_every: int = 10
    adapter_name: str = ""  # default: the task name
    parallel: Literal["auto", "none", "ddp", "fsdp"] = "auto"  # under torchrun: auto = DDP

    def __post_init__(self) -> None:
        if isinstance(self.task, dict):
            self.task = NewTaskConfig.from_dict(self.task)
        self.targets = tuple(self.targets)
        if self.mode not in ("lora", "full"):
            raise ValueError(f"mode must be 'lora' or 'full', got {self.mode!r}")
        if self.rank < 1 or self.alpha <= 0:
            raise ValueError(f"LoRA rank must be >= 1 and alpha > 0, got rank {self.rank}, alpha {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.mode == "lora" and not self.targets:
            raise ValueError("LoRA needs at least one target module")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"steps and batch size must be >= 1 and lr > 0 (got {self.steps}, {self.batch_size}, {self.lr})")
        if self.size < 8:
            raise ValueError(f"size must be at least 8 px, got {self.size}")
        if not (0.0 <= self.holdout < 1.0 or (self.holdout >= 1 and float(self.holdout).is_integer())):
            raise ValueError(f"holdout is a fraction in [0, 1) or a whole number of pairs, got {self.holdout}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.checkpoint_every < 1 or self.keep_last < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every, keep_last and log_every must be >= 1")
        if self.parallel not in ("auto", "none", "ddp", "fsdp"):
            raise ValueError(f"parallel must be auto, none, ddp or fsdp, got {self.parallel!r}")
        if not self.adapter_name:
            self.adapter_name = self.task.name

    def train_config(self):
        """The same run as a one-stage :class:`pixwizard.train.config.TrainConfig` (schedule and
        checkpoint code are shared with the trainer)."""
        from pixwizard.train.config import StageConfig, TrainConfig

        return TrainConfig(name=f"finetune-{self.task.name}", model="custom", batch_size=self.batch_size,
                           seed=self.seed, precision=self.precision, parallel="none", grad_clip=self.grad_clip,
                           weight_decay=self.weight_decay, decay_fraction=self.decay_fraction,
                           ema_decay=self.ema_decay, checkpoint_every=self.checkpoint_every,
                           keep_last=self.keep_last, log_every=self.log_every,
                           stages=[StageConfig("finetune", steps=self.steps, lr=self.lr, resolutions=(self.size,),
                                               warmup_steps=self.warmup_steps)])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FinetuneConfig":
        return cls(**_known(cls, d, "finetune"))


def _known(cls, d: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {what} option(s): {', '.join(unknown)}")
    return dict(d)


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} must hold a JSON object")
    return data
