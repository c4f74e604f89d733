"""Edge-map F1 with a pixel tolerance, for canny / sketch outputs (and canny->image faithfulness).

Conventions:
- an edge map is HxW or HxWx3 uint8 (edges bright) or HxW bool; uint8 maps are binarised as
  channel mean >= ``threshold`` (default 128); line-art with dark strokes must be inverted first;
- matching by dilation: a predicted edge pixel is correct when a ground-truth edge pixel lies
  within ``tolerance`` pixels in Chebyshev distance (a (2t+1)x(2t+1) square); recall counts
  ground-truth edge pixels with a predicted edge pixel within the same distance;
  ``tolerance=0`` is exact pixel matching;
- precision = matched predicted / predicted, recall = matched ground truth / ground truth,
  F1 = 2PR / (P + R); both maps empty -> 1.0, exactly one empty -> 0.0;
- a dataset score is the mean of per-image F1.
"""

from __future__ import annotations

import cv2
import numpy as np


def binarize_edges(edges: np.ndarray, threshold: int = 128) -> np.ndarray:
    """HxW bool edge mask from a bool map or a uint8 (HxW or HxWx3) picture with bright edges."""
    edges = np.asarray(edges)
    if edges.dtype == bool and edges.ndim == 2:
        return edges
    if edges.dtype != np.uint8 or edges.ndim not in (2, 3) or (edges.ndim == 3 and edges.shape[2] != 3):
        raise ValueError(f"edge map must be HxW bool or HxW/HxWx3 uint8, got {edges.dtype} {edges.shape}")
    grey = edges.astype(np.float32).mean(axis=2) if edges.ndim == 3 else edges
    return grey >= threshold


def edge_f1(pred: np.ndarray, gt: np.ndarray, tolerance: int = 1, threshold: int = 128) -> float:
    """F1 of predicted against ground-truth edges with a ``tolerance``-pixel matching radius."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    p, g = binarize_edges(pred, threshold), binarize_edges(gt, threshold)
    if p.shape != g.shape:
        raise ValueError(f"edge maps differ in size: {p.shape} vs {g.shape}")
    n_p, n_g = int(p.sum()), int(g.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    g_near = cv2.dilate(g.astype(np.uint8), kernel).astype(bool)
    p_near = cv2.dilate(p.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(p & g_near) / n_p
    recall = np.count_nonzero(g & p_near) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
