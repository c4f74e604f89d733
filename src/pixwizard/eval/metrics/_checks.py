"""Input validation shared by the metric modules (clear errors, never silent fixes)."""

from __future__ import annotations

import numpy as np


def as_rgb_uint8(image: np.ndarray, name: str) -> np.ndarray:
    """Return ``image`` if it is HxWx3 uint8, else raise ValueError naming the argument."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an HxWx3 uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")


def as_mask(mask: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """Return ``mask`` as HxW bool; it must be bool (or 0/1 integers) with the given shape."""
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {mask.shape}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{name} must be a bool (or 0/1) mask, got {mask.dtype}")
        mask = mask.astype(bool)
    return mask
