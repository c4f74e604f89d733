"""Pixel fidelity metrics for image outputs: PSNR and SSIM in RGB and on Y, and masked PSNR.

Conventions (all functions):
- images are HxWx3 uint8 RGB, compared as float64 with data range 255;
- ``crop``: pixels removed from every border before scoring (the super-resolution convention
  crops ``scale`` pixels; 0 = none);
- PSNR = 10 log10(255^2 / MSE), MSE over every pixel and channel scored; identical inputs give
  ``inf``;
- SSIM is the Wang et al. (2004) convention as ``skimage.metrics.structural_similarity`` with
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``; in RGB it is the mean of the
  three per-channel SSIMs (``channel_axis=-1``);
- Y is ITU-R BT.601 luma as Matlab's ``rgb2ycbcr`` (the restoration papers' convention):
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B in [0, 1] given as 0-255 values,
  i.e. Y in [16, 235], kept as float (not rounded); PSNR/SSIM on Y still use data range 255.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from ._checks import as_mask, as_rgb_uint8, same_shape

DATA_RANGE = 255.0
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0  # per 0-255 channel value


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an HxWx3 uint8 RGB image as HxW float64 in [16, 235] (Matlab rgb2ycbcr)."""
    image = as_rgb_uint8(image, "image")
    return 16.0 + image.astype(np.float64) @ _Y_WEIGHTS


def _prepare(pred: np.ndarray, target: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    pred = as_rgb_uint8(pred, "pred")
    target = as_rgb_uint8(target, "target")
    same_shape(pred, target, "pred/target")
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop:
        h, w = pred.shape[:2]
        if 2 * crop >= min(h, w):
            raise ValueError(f"crop={crop} leaves nothing of a {h}x{w} image")
        pred = pred[crop:-crop, crop:-crop]
        target = target[crop:-crop, crop:-crop]
    return pred, target


def _psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE ** 2 / mse)


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    return float(structural_similarity(a, b, data_range=DATA_RANGE, channel_axis=channel_axis,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def psnr(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float:
    """PSNR in dB over all RGB values (data range 255); ``inf`` when identical."""
    pred, target = _prepare(pred, target, crop)
    diff = pred.astype(np.float64) - target.astype(np.float64)
    return _psnr_from_mse(float(np.mean(diff ** 2)))


def psnr_y(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float:
    """PSNR in dB on BT.601 Y (float, data range 255); ``inf`` when the Y planes are identical."""
    pred, target = _prepare(pred, target, crop)
    diff = rgb_to_y(pred) - rgb_to_y(target)
    return _psnr_from_mse(float(np.mean(diff ** 2)))


def ssim(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float:
    """SSIM in RGB: mean of per-channel Wang et al. SSIM (Gaussian window sigma 1.5), range 255."""
    pred, target = _prepare(pred, target, crop)
    return _ssim(pred.astype(np.float64), target.astype(np.float64), channel_axis=-1)


def ssim_y(pred: np.ndarray, target: np.ndarray, crop: int = 0) -> float:
    """SSIM on BT.601 Y (float, data range 255), Wang et al. convention."""
    pred, target = _prepare(pred, target, crop)
    return _ssim(rgb_to_y(pred), rgb_to_y(target), channel_axis=None)


def masked_psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the RGB values of the pixels where ``mask`` (HxW bool) is True.

    Inpainting scores the hole (mask = the filled region). Raises ValueError on an empty mask.
    """
    pred = as_rgb_uint8(pred, "pred")
    target = as_rgb_uint8(target, "target")
    same_shape(pred, target, "pred/target")
    mask = as_mask(mask, pred.shape[:2], "mask")
    if not mask.any():
        raise ValueError("masked_psnr: the mask selects no pixel")
    diff = pred[mask].astype(np.float64) - target[mask].astype(np.float64)
    return _psnr_from_mse(float(np.mean(diff ** 2)))


def preserve_psnr(pred: np.ndarray, reference: np.ndarray, edit_mask: np.ndarray) -> float:
    """PSNR in dB over the pixels OUTSIDE ``edit_mask``: how well an edit preserves the rest.

    ``reference`` is what the untouched region should look like (the input image, or the
    counterfactual target); ``edit_mask`` (HxW bool) is True where the edit is allowed to change
    pixels. Raises ValueError if the mask covers the whole image.
    """
    reference = as_rgb_uint8(reference, "reference")
    edit_mask = as_mask(edit_mask, reference.shape[:2], "edit_mask")
    if edit_mask.all():
        raise ValueError("preserve_psnr: the edit mask covers the whole image, nothing to preserve")
    return masked_psnr(pred, reference, ~edit_mask)
