"""Semantic segmentation metrics from a dataset-wide confusion matrix: mIoU and pixel accuracy.

Conventions:
- label maps are HxW integer class ids in ``[0, num_classes)`` (0 = background is a class like any
  other); ground-truth pixels equal to ``ignore_index`` are not scored; a prediction outside
  the class range is an error (decode first, e.g. nearest palette colour);
- the confusion matrix ``cm[gt, pred]`` is summed over the dataset, then
  IoU_c = cm[c,c] / (row_c + col_c - cm[c,c]);
- mIoU averages IoU over the classes PRESENT in the ground truth OR the prediction of the whole
  dataset (union > 0); classes absent from both are left out, not counted as 0 or 1;
- pixel accuracy = trace / total scored pixels.
"""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Dataset-wide confusion matrix with ``update(pred, gt)``, ``miou()``, ``pixel_acc()``."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ValueError(f"label maps must be HxW of one shape, got {pred.shape} and {gt.shape}")
        if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(gt.dtype, np.integer)):
            raise ValueError(f"label maps must be integer class ids, got {pred.dtype} and {gt.dtype}")
        keep = np.ones(gt.shape, bool) if self.ignore_index is None else gt != self.ignore_index
        p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
        for name, arr in (("pred", p), ("gt", g)):
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_classes):
                raise ValueError(f"{name} has class ids outside [0, {self.num_classes}): "
                                 f"{arr.min()}..{arr.max()}")
        n = self.num_classes
        self.matrix += np.bincount(g * n + p, minlength=n * n).reshape(n, n)

    def per_class_iou(self) -> np.ndarray:
        """IoU per class (float64); NaN for classes absent from both ground truth and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        iou = self.per_class_iou()
        if np.isnan(iou).all():
            raise ValueError("mIoU is undefined: no pixel accumulated")
        return float(np.nanmean(iou))

    def pixel_acc(self) -> float:
        total = int(self.matrix.sum())
        if total == 0:
            raise ValueError("pixel accuracy is undefined: no pixel accumulated")
        return float(np.trace(self.matrix)) / total
