"""Noise and low-light degradations: ``denoise`` and ``lowlight``.

``denoise`` draws one of two noise models (probability ``REAL_NOISE_PROB`` for the second):
- ``gaussian``: i.i.d. additive Gaussian noise, sigma ~ U(15, 50) on the 0-255 scale (the
  CBSD68/Kodak protocol uses sigma 15, 25, 50);
- ``camera``: signal-dependent Poisson-Gaussian noise in linear light, as in "Unprocessing
  Images for Learned Raw Denoising" (Brooks et al. 2019): variance = shot * x + read with
  log(shot) ~ U(log 1e-3, log 1.2e-2) and log(read) = 2.18 log(shot) + 1.2 + N(0, 0.26).
  (Brooks' lower end 1e-4 is raised to 1e-3 so every sample is visibly noisy, SIDD-like.)
  The noise is made spatially/chromatically correlated in one of two ways: ``bayer`` draws it
  on an RGGB mosaic and bilinearly demosaics it (what a camera pipeline does to sensor noise);
  ``channels`` correlates R, G, B with a coefficient rho ~ U(0, 0.6).
  Linear light is approximated by the 2.2 power law (``GAMMA``).

``lowlight`` follows the usual LOL-style synthesis: x_low = scale * x ** gamma (sRGB values in
[0, 1]) with gamma ~ U(2.0, 3.5) and scale ~ U(0.5, 1.0), then camera noise with a weaker shot
range log-U(1e-4, 2e-3) and 8-bit quantisation.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixwizard.data.photo.common import (log_uniform, photo_task, power, restoration_sample, to_float,
                                         to_uint8, uniform)
from pixwizard.data.sample import Sample

GAMMA = 2.2
GAUSSIAN_SIGMA = (15.0, 50.0)          # on the 0-255 scale
REAL_NOISE_PROB = 0.5
SHOT_NOISE = (1e-3, 1.2e-2)            # variance per unit linear signal (log-uniform)
READ_NOISE_SLOPE, READ_NOISE_OFFSET, READ_NOISE_STD = 2.18, 1.20, 0.26
CHANNEL_RHO = (0.0, 0.6)
BAYER_PROB = 0.5
LOWLIGHT_GAMMA = (2.0, 3.5)
LOWLIGHT_SCALE = (0.5, 1.0)
LOWLIGHT_SHOT = (1e-4, 2e-3)

_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)
# Bilinear demosaicing kernels: green sits on a quincunx, red/blue on a 2x2 lattice.
_K_GREEN = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4.0
_K_RED_BLUE = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4.0


def _bayer_masks(h: int, w: int) -> np.ndarray:
    """HxWx3 float32 0/1 masks of an RGGB mosaic (R at even rows/cols, B at odd rows/cols)."""
    m = np.zeros((h, w, 3), np.float32)
    m[0::2, 0::2, 0] = 1
    m[0::2, 1::2, 1] = 1
    m[1::2, 0::2, 1] = 1
    m[1::2, 1::2, 2] = 1
    return m


def _read_variance(shot: float, rng: np.random.Generator) -> float:
    log_read = READ_NOISE_SLOPE * np.log(shot) + READ_NOISE_OFFSET + rng.normal(0.0, READ_NOISE_STD)
    return float(np.exp(log_read))


def camera_noise(linear: np.ndarray, shot: float, read: float, mode: str, rho: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Poisson-Gaussian noise (variance = shot * x + read) for an HxWx3 linear image in [0, 1].

    mode ``bayer``: noise drawn per mosaic site of an RGGB sensor, then bilinearly demosaiced
    (demosaicing is linear, so only the noise passes through it and the clean image stays exact);
    mode ``channels``: per-pixel RGB noise with cross-channel correlation ``rho``.
    Returns the float32 noise (same shape), to be added in linear light.
    """
    h, w, _ = linear.shape
    if mode == "bayer":
        masks = _bayer_masks(h, w)
        mosaic = (linear * masks).sum(axis=2)
        std = np.sqrt(np.maximum(mosaic * shot + read, 0.0))
        noise = rng.standard_normal((h, w), dtype=np.float32) * std
        planes = [cv2.filter2D(noise * masks[..., c], -1, k, borderType=cv2.BORDER_REFLECT)
                  for c, k in enumerate((_K_RED_BLUE, _K_GREEN, _K_RED_BLUE))]
        return np.stack(planes, axis=2)
    if mode == "channels":
        cov = np.full((3, 3), rho, np.float32) + np.eye(3, dtype=np.float32) * (1.0 - rho)
        chol = np.linalg.cholesky(cov).astype(np.float32)
        z = rng.standard_normal((h, w, 3), dtype=np.float32) @ chol.T
        return z * np.sqrt(np.maximum(linear * shot + read, 0.0))
    raise ValueError(f"unknown camera noise mode {mode!r}; expected 'bayer' or 'channels'")


def _draw_camera_noise(shot_range: tuple[float, float], rng: np.random.Generator) -> dict[str, Any]:
    shot = log_uniform(rng, shot_range)
    mode = "bayer" if rng.random() < BAYER_PROB else "channels"
    rho = uniform(rng, CHANNEL_RHO) if mode == "channels" else 0.0
    return {"shot": shot, "read": _read_variance(shot, rng), "mode": mode, "rho": rho}


def _apply_camera_noise(linear: np.ndarray, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Linear-light float [0,1] -> noisy sRGB float [0,1]."""
    noisy = linear + camera_noise(linear, p["shot"], p["read"], p["mode"], p["rho"], rng)
    return power(np.clip(noisy, 0.0, 1.0), 1.0 / GAMMA)


@photo_task
def denoise(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Gaussian (sigma 15-50) or camera-like Poisson-Gaussian noise; target = clean."""
    if rng.random() < REAL_NOISE_PROB:
        params: dict[str, Any] = {"model": "camera", **_draw_camera_noise(SHOT_NOISE, rng)}
        degraded = to_uint8(_apply_camera_noise(_TO_LINEAR[clean], params, rng))
    else:
        sigma = uniform(rng, GAUSSIAN_SIGMA)
        params = {"model": "gaussian", "sigma": sigma}
        noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma / 255.0)
        degraded = to_uint8(to_float(clean) + noise)
    return restoration_sample("denoise", degraded, clean, params)


@photo_task
def lowlight(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """LOL-style darkening: scale * x ** gamma, then weak camera noise and 8-bit quantisation."""
    gamma = uniform(rng, LOWLIGHT_GAMMA)
    scale = uniform(rng, LOWLIGHT_SCALE)
    noise = _draw_camera_noise(LOWLIGHT_SHOT, rng)
    linear_dark = power(np.float32(scale) * power(to_float(clean), gamma), GAMMA)
    degraded = to_uint8(_apply_camera_noise(linear_dark, noise, rng))
    return restoration_sample("lowlight", degraded, clean, {"gamma": gamma, "scale": scale, "noise": noise})
