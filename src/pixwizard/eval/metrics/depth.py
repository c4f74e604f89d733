"""Depth metrics: AbsRel, RMSE and delta1 on valid pixels, with optional scale (and shift) alignment.

Conventions:
- depth maps are HxW float, metric depth (camera z, the ``Sample.truth["depth"]`` convention);
- valid pixels: ground truth finite and in ``(min_depth, max_depth]`` (``max_depth=None`` = no upper
  bound), prediction finite, and the optional ``valid`` mask True;
- the prediction is clamped to ``[min_depth, max_depth]`` before and after alignment (the usual
  NYUv2 evaluation clamp), so ratios are always defined;
- alignment (fitted on the valid pixels only):
  ``"none"``: metric prediction as is;
  ``"median"``: scale s = median(gt) / median(pred);
  ``"lstsq"``: least-squares scale and shift IN DEPTH: min ||s*pred + t - gt||^2;
  ``"lstsq_inverse"``: least-squares scale and shift IN INVERSE DEPTH (the MiDaS convention):
  min ||s/pred + t - 1/gt||^2, then depth = 1 / max(s/pred + t, 1/cap), cap = ``max_depth`` or,
  when None, the largest valid ground-truth depth;
- AbsRel = mean(|pred - gt| / gt); RMSE = sqrt(mean((pred - gt)^2)) in the depth unit;
  delta1 = fraction of pixels with max(pred/gt, gt/pred) < 1.25;
- a dataset score is the mean of the per-image values (the Eigen et al. protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DepthAlign = Literal["none", "median", "lstsq", "lstsq_inverse"]
ALIGN_MODES: tuple[str, ...] = ("none", "median", "lstsq", "lstsq_inverse")


@dataclass(frozen=True)
class DepthErrors:
    absrel: float
    rmse: float
    delta1: float


def valid_depth_mask(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                     min_depth: float = 1e-3, max_depth: float | None = None) -> np.ndarray:
    """HxW bool: pixels scored (see the module conventions)."""
    ok = np.isfinite(gt) & np.isfinite(pred)
    with np.errstate(invalid="ignore"):
        ok &= gt > min_depth
        if max_depth is not None:
            ok &= gt <= max_depth
    if valid is not None:
        valid = np.asarray(valid)
        if valid.shape != gt.shape or valid.dtype != bool:
            raise ValueError(f"valid must be an HxW bool mask of shape {gt.shape}, got {valid.dtype} {valid.shape}")
        ok &= valid
    return ok


def align_depth(pred: np.ndarray, gt: np.ndarray, mode: DepthAlign, min_depth: float = 1e-3,
                max_depth: float | None = None) -> np.ndarray:
    """Align 1-D arrays of valid predicted depths to ground truth; returns the aligned, clamped depths."""
    upper = np.inf if max_depth is None else max_depth
    pred = np.clip(pred.astype(np.float64), min_depth, upper)
    gt = gt.astype(np.float64)
    if mode == "none":
        out = pred
    elif mode == "median":
        out = pred * (np.median(gt) / np.median(pred))
    elif mode == "lstsq":
        design = np.stack([pred, np.ones_like(pred)], axis=1)
        (s, t), *_ = np.linalg.lstsq(design, gt, rcond=None)
        out = s * pred + t
    elif mode == "lstsq_inverse":
        design = np.stack([1.0 / pred, np.ones_like(pred)], axis=1)
        (s, t), *_ = np.linalg.lstsq(design, 1.0 / gt, rcond=None)
        cap = float(gt.max()) if max_depth is None else max_depth
        out = 1.0 / np.maximum(s / pred + t, 1.0 / cap)
    else:
        raise ValueError(f"unknown depth alignment {mode!r}; choose one of {ALIGN_MODES}")
    return np.clip(out, min_depth, upper)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                  align: DepthAlign = "none", min_depth: float = 1e-3,
                  max_depth: float | None = None) -> DepthErrors:
    """AbsRel, RMSE and delta1 of one depth map (HxW float) against ground truth on valid pixels."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"depth maps must be HxW of one shape, got {pred.shape} and {gt.shape}")
    ok = valid_depth_mask(pred, gt, valid, min_depth, max_depth)
    if not ok.any():
        raise ValueError("depth_metrics: no valid pixel to score")
    g = gt[ok]
    p = align_depth(pred[ok], g, align, min_depth, max_depth)
    ratio = np.maximum(p / g, g / p)
    return DepthErrors(absrel=float(np.mean(np.abs(p - g) / g)),
                       rmse=float(np.sqrt(np.mean((p - g) ** 2))),
                       delta1=float(np.mean(ratio < 1.25)))
