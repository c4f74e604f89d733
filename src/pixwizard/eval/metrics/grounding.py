"""Referring segmentation (cIoU, gIoU) and referring box (accuracy at IoU 0.5) metrics.

Conventions:
- masks are HxW bool (True = the referred object), prediction and ground truth of one shape;
- cIoU (cumulative IoU, the RefCOCO "overall IoU") = sum of intersections / sum of unions over the
  whole dataset, so large objects weigh more;
- gIoU (generalised / mean IoU, gRefCOCO) = mean over images of the per-image IoU, where an image
  whose ground truth AND prediction are both empty counts as IoU 1 (a correct "no target" answer);
- boxes are xyxy in pixels, float, continuous coordinates (area = (x1-x0)*(y1-y0)); a box hit is
  IoU >= 0.5 with the ground-truth box; a missing prediction (``None``) is a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import as_mask


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two HxW bool masks; 1.0 when both are empty."""
    gt = as_mask(gt, np.asarray(gt).shape, "gt")
    pred = as_mask(pred, gt.shape, "pred")
    union = int(np.count_nonzero(pred | gt))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & gt)) / union


@dataclass
class RefSegAccumulator:
    """Accumulates referring-segmentation results over a dataset; ``ciou()`` and ``giou()``."""

    intersection: int = 0
    union: int = 0
    per_image_iou: list[float] = field(default_factory=list)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        gt = as_mask(gt, np.asarray(gt).shape, "gt")
        pred = as_mask(pred, gt.shape, "pred")
        inter = int(np.count_nonzero(pred & gt))
        union = int(np.count_nonzero(pred | gt))
        self.intersection += inter
        self.union += union
        self.per_image_iou.append(1.0 if union == 0 else inter / union)

    def ciou(self) -> float:
        """Cumulative intersection / cumulative union; ValueError before any non-empty image."""
        if self.union == 0:
            raise ValueError("cIoU is undefined: no image with a non-empty prediction or ground truth")
        return self.intersection / self.union

    def giou(self) -> float:
        """Mean per-image IoU (empty GT + empty prediction = 1); ValueError before any update."""
        if not self.per_image_iou:
            raise ValueError("gIoU is undefined: no image accumulated")
        return float(np.mean(self.per_image_iou))


def _as_box(box, name: str) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"{name} must be 4 finite numbers xyxy, got {box}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{name} must satisfy x1 >= x0 and y1 >= y0 (xyxy), got {box}")
    return box


def box_iou(a, b) -> float:
    """IoU of two xyxy boxes (continuous coordinates); 0.0 when the union has no area."""
    a, b = _as_box(a, "box a"), _as_box(b, "box b")
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union <= 0 else float(inter / union)


def box_hit(pred, gt, threshold: float = 0.5) -> bool:
    """True when ``pred`` (xyxy or None = no box found) has IoU >= ``threshold`` with ``gt``."""
    return pred is not None and box_iou(pred, gt) >= threshold


@dataclass
class BoxAccuracy:
    """Fraction of samples whose predicted box reaches IoU >= ``threshold`` (Acc@0.5 by default)."""

    threshold: float = 0.5
    hits: int = 0
    total: int = 0

    def update(self, pred, gt) -> None:
        self.hits += int(box_hit(pred, gt, self.threshold))
        self.total += 1

    def compute(self) -> float:
        if self.total == 0:
            raise ValueError("box accuracy is undefined: no sample accumulated")
        return self.hits / self.total
