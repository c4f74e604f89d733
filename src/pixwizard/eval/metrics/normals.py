"""Surface-normal metrics: angular error in degrees on valid pixels.

Conventions:
- normal maps are HxWx3 float vectors in the camera frame (the ``Sample.truth["normals"]``
  convention); the prediction is normalised here (a decoded ``(n+1)/2`` picture is not unit
  length); a zero-length predicted vector scores 90 degrees (it carries no direction);
- valid pixels: ground truth finite with length > 0.5, and the optional ``valid`` mask True;
- reported: mean and median angular error (degrees) and the percentage (0-100) of pixels within
  11.25, 22.5 and 30 degrees;
- a dataset score pools every valid pixel of every image (the Fouhey et al. / Bae et al.
  protocol), not a mean of per-image values; the pooled median comes from a 0.01-degree histogram.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLDS_DEG: tuple[float, ...] = (11.25, 22.5, 30.0)
_BIN_DEG = 0.01
_N_BINS = int(round(180.0 / _BIN_DEG))


@dataclass(frozen=True)
class NormalErrors:
    mean: float
    median: float
    pct_11_25: float
    pct_22_5: float
    pct_30: float


def angular_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """1-D float64 angular errors in degrees [0, 180] over the valid pixels."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] != 3 or pred.shape != gt.shape:
        raise ValueError(f"normal maps must be HxWx3 of one shape, got {pred.shape} and {gt.shape}")
    gt_len = np.linalg.norm(gt, axis=2)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(gt).all(axis=2) & (gt_len > 0.5)
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != gt.shape[:2] or valid.dtype != bool:
            raise ValueError(f"valid must be an HxW bool mask of shape {gt.shape[:2]}, got {valid.dtype} {valid.shape}")
        ok &= valid
    p, g = pred[ok], gt[ok] / gt_len[ok][:, None]
    p = np.where(np.isfinite(p), p, 0.0)
    p_len = np.linalg.norm(p, axis=1)
    has_dir = p_len > 1e-8
    cos = np.zeros(len(p))
    cos[has_dir] = np.einsum("ij,ij->i", p[has_dir], g[has_dir]) / p_len[has_dir]
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _summary(mean: float, median: float, counts: list[int], n: int) -> NormalErrors:
    pct = [100.0 * c / n for c in counts]
    return NormalErrors(mean=mean, median=median, pct_11_25=pct[0], pct_22_5=pct[1], pct_30=pct[2])


def normal_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> NormalErrors:
    """Angular-error summary of one normal map (exact median)."""
    err = angular_errors(pred, gt, valid)
    if err.size == 0:
        raise ValueError("normal_metrics: no valid pixel to score")
    counts = [int(np.count_nonzero(err < t)) for t in THRESHOLDS_DEG]
    return _summary(float(err.mean()), float(np.median(err)), counts, err.size)


@dataclass
class NormalAccumulator:
    """Pools angular errors of every valid pixel over a dataset; ``compute()`` -> NormalErrors."""

    total: float = 0.0
    count: int = 0
    within: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS_DEG))
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(_N_BINS, dtype=np.int64))

    def update(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> None:
        err = angular_errors(pred, gt, valid)
        self.total += float(err.sum())
        self.count += err.size
        for i, t in enumerate(THRESHOLDS_DEG):
            self.within[i] += int(np.count_nonzero(err < t))
        bins = np.minimum((err / _BIN_DEG).astype(np.int64), _N_BINS - 1)
        self.histogram += np.bincount(bins, minlength=_N_BINS)

    def compute(self) -> NormalErrors:
        if self.count == 0:
            raise ValueError("normal metrics are undefined: no valid pixel accumulated")
        cum = np.cumsum(self.histogram)
        median_bin = int(np.searchsorted(cum, self.count / 2.0))
        median = (median_bin + 0.5) * _BIN_DEG  # bin centre: within 0.005 degrees of the true median
        return _summary(self.total / self.count, median, self.within, self.count)
