"""Blur degradations: ``deblur_motion``, ``deblur_defocus``, ``deblur_gaussian``.

All kernels are in absolute pixels (the benchmark convention) and applied as a true
convolution with reflected borders; no noise is added (GoPro-style targets are noise-free).
- motion: a random camera-shake trajectory after Boracchi & Foi (2012) as used by DeblurGAN:
  an angular random walk (per-step jitter ~ U(0, 0.5) rad, occasional big shakes with
  probability ~ U(0, 0.1) per step), scaled to an extent of ``MOTION_LENGTH`` = 7-25 px and
  splatted bilinearly into the kernel; ``MOTION_LINEAR_PROB`` of kernels are straight lines.
- defocus: a uniform anti-aliased disk (the thin-lens circle of confusion), radius 1.5-5 px.
- gaussian: isotropic Gaussian, sigma 1-3 px, kernel 2*ceil(3 sigma)+1.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixwizard.data.photo.common import photo_task, restoration_sample, uniform
from pixwizard.data.sample import Sample

MOTION_LENGTH = (7.0, 25.0)        # px, largest extent of the trajectory
MOTION_STEPS = 96                  # trajectory samples
MOTION_JITTER = (0.0, 0.5)         # rad per step (angular random walk)
MOTION_BIG_SHAKE = (0.0, 0.1)      # probability per step of an extra N(0, 1) rad turn
MOTION_LINEAR_PROB = 0.2
DEFOCUS_RADIUS = (1.5, 5.0)        # px
GAUSSIAN_SIGMA = (1.0, 3.0)        # px


def convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution (OpenCV's filter2D correlates, so the kernel is flipped), reflected borders."""
    return cv2.filter2D(img, -1, cv2.flip(kernel, -1), borderType=cv2.BORDER_REFLECT)


def motion_kernel(length: float, jitter: float, big_shake: float, angle: float,
                  rng: np.random.Generator) -> np.ndarray:
    """A normalised (sum 1) float32 motion-blur kernel from a random shake trajectory.

    ``length`` px is the trajectory's largest extent, ``angle`` its initial direction (rad),
    ``jitter`` the std of the per-step turn, ``big_shake`` the per-step probability of a big turn.
    """
    turns = rng.normal(0.0, jitter, MOTION_STEPS) if jitter > 0 else np.zeros(MOTION_STEPS)
    turns = turns + (rng.random(MOTION_STEPS) < big_shake) * rng.normal(0.0, 1.0, MOTION_STEPS)
    heading = angle + np.cumsum(turns)
    path = np.cumsum(np.exp(1j * heading))
    path -= (path.real.max() + path.real.min()) / 2 + 1j * (path.imag.max() + path.imag.min()) / 2
    extent = max(np.ptp(path.real), np.ptp(path.imag), 1e-6)
    path *= length / extent
    size = int(np.ceil(length)) + 3
    size += 1 - size % 2
    x, y = path.real + size // 2, path.imag + size // 2
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    k = np.zeros((size, size), np.float64)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    return (k / k.sum()).astype(np.float32)


def disk_kernel(radius: float, supersample: int = 8) -> np.ndarray:
    """A normalised anti-aliased disk of ``radius`` px (pixel coverage from a supersampled grid)."""
    half = int(np.ceil(radius))
    n = (2 * half + 1) * supersample
    coords = (np.arange(n) + 0.5) / supersample - (half + 0.5)
    inside = (coords[None, :] ** 2 + coords[:, None] ** 2) <= radius ** 2
    k = inside.reshape(2 * half + 1, supersample, 2 * half + 1, supersample).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


@photo_task
def deblur_motion(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Random camera-shake blur (7-25 px); target = clean."""
    length = uniform(rng, MOTION_LENGTH)
    linear = bool(rng.random() < MOTION_LINEAR_PROB)
    jitter = 0.0 if linear else uniform(rng, MOTION_JITTER)
    big_shake = 0.0 if linear else uniform(rng, MOTION_BIG_SHAKE)
    angle = uniform(rng, (0.0, 2 * np.pi))
    kernel = motion_kernel(length, jitter, big_shake, angle, rng)
    params = {"length": length, "linear": linear, "jitter": jitter, "big_shake": big_shake,
              "angle": angle, "kernel_size": int(kernel.shape[0])}
    return restoration_sample("deblur_motion", convolve(clean, kernel), clean, params)


@photo_task
def deblur_defocus(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Disk (circle of confusion) blur, radius 1.5-5 px; target = clean."""
    radius = uniform(rng, DEFOCUS_RADIUS)
    return restoration_sample("deblur_defocus", convolve(clean, disk_kernel(radius)), clean,
                              {"radius": radius})


@photo_task
def deblur_gaussian(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Isotropic Gaussian blur, sigma 1-3 px; target = clean."""
    sigma = uniform(rng, GAUSSIAN_SIGMA)
    ksize = 2 * int(np.ceil(3 * sigma)) + 1
    blurred = cv2.GaussianBlur(clean, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    return restoration_sample("deblur_gaussian", blurred, clean, {"sigma": sigma, "ksize": ksize})
