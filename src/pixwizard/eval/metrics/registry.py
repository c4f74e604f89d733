"""METRICS: every metric by name, so an evaluation harness scores a task from its metric names.

Each ``MetricSpec`` gives ``higher_is_better``, what ``update`` takes (``inputs``), and ``new(**options)``
which returns a fresh dataset accumulator with ``update(...)`` and ``compute() -> float``.
Options are fixed per dataset (e.g. ``psnr`` ``crop=4``; depth ``align="median", max_depth=10``;
``miou`` ``num_classes=..., ignore_index=255``; ``clip_i`` ``model_path=...``; ``fid``
``weights_path=...``). ``fn`` is the per-item score where one exists (None for dataset-level
metrics). How a dataset score is formed is stated per metric in its module: per-image mean for
PSNR/SSIM/depth/edge F1/CLIP/DINO; cumulative for cIoU; pooled pixels for normals; a confusion
matrix for mIoU and pixel accuracy; feature statistics for FID/KID; per-image mean for the
faithfulness of world renders and for blockiness (the patch grid's visibility in an output).

Usage::

    acc = METRICS["psnr"].new(crop=4)
    for pred, target in pairs:
        acc.update(pred, target)
    score = acc.compute()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from . import depth as _depth
from .blockiness import blockiness
from .distribution import FidKidAccumulator
from .edges import edge_f1
from .embedding import ClipScorer, DinoScorer
from .faithfulness import colour_position_accuracy
from .grounding import BoxAccuracy, RefSegAccumulator, box_hit
from .image import masked_psnr, preserve_psnr, psnr, psnr_y, ssim, ssim_y
from .normals import NormalAccumulator
from .semantic import ConfusionMatrix


class Accumulator(Protocol):
    def update(self, *args: Any, **kwargs: Any) -> None: ...

    def compute(self) -> float: ...


@dataclass
class MeanOf:
    """Dataset score = mean of a per-item score ``fn(*args, **options, **kwargs)``."""

    fn: Callable[..., float]
    options: dict[str, Any] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.values.append(float(self.fn(*args, **self.options, **kwargs)))

    def compute(self) -> float:
        if not self.values:
            raise ValueError("no item accumulated")
        return float(np.mean(self.values))


@dataclass
class ViewOf:
    """One number read from a richer accumulator's result (``read(inner)`` after updates)."""

    inner: Any
    read: Callable[[Any], float]

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.inner.update(*args, **kwargs)

    def compute(self) -> float:
        return float(self.read(self.inner))


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    inputs: str  # the arguments of update()
    new: Callable[..., Accumulator]  # new(**options) -> a fresh accumulator
    fn: Callable[..., float] | None = None  # per-item score, None for dataset-level metrics


def _mean(fn: Callable[..., float]) -> Callable[..., Accumulator]:
    return lambda **options: MeanOf(fn, options)


def _depth_field(name: str) -> Callable[..., float]:
    def score(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None, **options: Any) -> float:
        return getattr(_depth.depth_metrics(pred, gt, valid, **options), name)

    score.__name__ = name
    score.__doc__ = f"{name} of one depth map (see pixwizard.eval.metrics.depth)."
    return score


def _normals(name: str) -> Callable[..., Accumulator]:
    return lambda: ViewOf(NormalAccumulator(), lambda acc: getattr(acc.compute(), name))


def _confusion(method: str) -> Callable[..., Accumulator]:
    return lambda num_classes, ignore_index=None: ViewOf(ConfusionMatrix(num_classes, ignore_index),
                                                         lambda acc: getattr(acc, method)())


def _refseg(method: str) -> Callable[..., Accumulator]:
    return lambda: ViewOf(RefSegAccumulator(), lambda acc: getattr(acc, method)())


def _scorer(cls: type, method: str) -> Callable[..., Accumulator]:
    def new(model_path: str, device: str = "cpu") -> Accumulator:
        return MeanOf(getattr(cls(model_path, device=device), method))

    return new


def _fidkid(field_name: str) -> Callable[..., Accumulator]:
    return lambda **options: ViewOf(FidKidAccumulator(**options),
                                    lambda acc: getattr(acc.compute(), field_name))


_IMG = "pred uint8 HxWx3, target uint8 HxWx3"
_DEPTH = "pred HxW float depth, gt HxW float depth, valid HxW bool | None"
_NORMAL = "pred HxWx3 float normals, gt HxWx3 float normals, valid HxW bool | None"
_LABELS = "pred HxW int labels, gt HxW int labels"

_SPECS = (
    MetricSpec("psnr", True, _IMG, _mean(psnr), psnr),
    MetricSpec("ssim", True, _IMG, _mean(ssim), ssim),
    MetricSpec("psnr_y", True, _IMG, _mean(psnr_y), psnr_y),
    MetricSpec("ssim_y", True, _IMG, _mean(ssim_y), ssim_y),
    MetricSpec("ciou", True, "pred HxW bool mask, gt HxW bool mask", _refseg("ciou")),
    MetricSpec("giou", True, "pred HxW bool mask, gt HxW bool mask", _refseg("giou")),
    MetricSpec("box_acc50", True, "pred xyxy box or None, gt xyxy box",
               lambda threshold=0.5: BoxAccuracy(threshold), partial(box_hit, threshold=0.5)),
    MetricSpec("absrel", False, _DEPTH, _mean(_depth_field("absrel")), _depth_field("absrel")),
    MetricSpec("rmse", False, _DEPTH, _mean(_depth_field("rmse")), _depth_field("rmse")),
    MetricSpec("delta1", True, _DEPTH, _mean(_depth_field("delta1")), _depth_field("delta1")),
    MetricSpec("mean_angle", False, _NORMAL, _normals("mean")),
    MetricSpec("median_angle", False, _NORMAL, _normals("median")),
    MetricSpec("pct_11_25", True, _NORMAL, _normals("pct_11_25")),
    MetricSpec("miou", True, _LABELS, _confusion("miou")),
    MetricSpec("pixel_acc", True, _LABELS, _confusion("pixel_acc")),
    MetricSpec("edge_f1", True, "pred edge map, gt edge map (uint8 bright edges or bool)",
               _mean(edge_f1), edge_f1),
    MetricSpec("preserve_psnr", True, "pred uint8 HxWx3, reference uint8 HxWx3, edit_mask HxW bool",
               _mean(preserve_psnr), preserve_psnr),
    MetricSpec("masked_psnr", True, "pred uint8 HxWx3, target uint8 HxWx3, mask HxW bool (the hole)",
               _mean(masked_psnr), masked_psnr),
    MetricSpec("clip_i", True, "pred uint8 HxWx3, reference uint8 HxWx3", _scorer(ClipScorer, "clip_i")),
    MetricSpec("clip_t", True, "pred uint8 HxWx3, text str", _scorer(ClipScorer, "clip_t")),
    MetricSpec("dino", True, "pred uint8 HxWx3, reference uint8 HxWx3", _scorer(DinoScorer, "dino")),
    MetricSpec("fid", False, "pred (generated) uint8 HxWx3, target (real) uint8 HxWx3", _fidkid("fid")),
    MetricSpec("kid", False, "pred (generated) uint8 HxWx3, target (real) uint8 HxWx3", _fidkid("kid_mean")),
    MetricSpec("faithfulness", True, "pred uint8 HxWx3, reference render, instances HxW int, colour names",
               _mean(colour_position_accuracy), colour_position_accuracy),
    MetricSpec("blockiness", False, "pred uint8 HxWx3 (the output alone); option block (token footprint, px)",
               _mean(blockiness), blockiness),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}


def metric(name: str) -> MetricSpec:
    """The spec for ``name``; ValueError listing the known names otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
