"""Resampling, compression and overlay degradations: ``sr_x2``, ``sr_x4``, ``jpeg_artifact``,
``deshadow``, ``watermark_removal``, ``demoire``, ``colorize``.

- sr_x2 / sr_x4 (DIV2K/Set5 protocol): bicubic downscale by the factor with anti-aliasing
  (Pillow's BICUBIC, a = -0.5, the kernel MATLAB's imresize uses), then bicubic upscale back to
  the original size so input and target align pixel for pixel. No random parameters.
- jpeg_artifact (LIVE1/Classic5 protocol): JPEG quality ~ U{10..40}, 4:2:0 chroma (OpenCV default).
- deshadow (ISTD/SRD-like): 1-2 random polygons (3-8 vertices, radius 0.2-0.6 of the short
  side) with a soft penumbra (blur sigma 0.5-4% of the short side) multiply the light by
  k ~ U(0.3, 0.7) per channel, tinted bluish by up to 15% (shadows are lit by the sky).
- watermark_removal (CLWD/LVW-like): semi-transparent text (Hershey fonts via cv2.putText,
  optionally with a ring logo), single (40-85% of the width, inside the frame) or tiled,
  rotated by up to 35 deg; opacity ~ U(0.3, 0.7); white, black or a random colour, where white
  over a bright area (mean luma > 0.75) becomes black and black over a dark one (< 0.25) white.
- demoire (screen photographs, TIP2018-like): the beat pattern of an RGB-stripe display grid
  sampled by a camera, I = J * (1 + a m(x) P(x)) where P is the first harmonic of the beat:
  a cosine of period 4-32 px at a random angle whose R, G, B phases are offset by up to 1/3
  period (the sub-pixel stripes -> rainbow bands), curved by a smooth phase warp (lens
  distortion) with an optional weaker orthogonal component; amplitude a ~ U(0.15, 0.45)
  varies smoothly over the image, m in [0.3, 1]. A slight blur sigma ~ U(0, 0.8) px follows.
- colorize: input = ITU-R BT.601 luma replicated to 3 channels. No random parameters.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image

from pixwizard.data.photo.common import (integer, photo_task, restoration_sample, short_side,
                                         smooth_field, to_float, to_uint8, uniform)
from pixwizard.data.sample import Sample

JPEG_QUALITY = (10, 40)

SHADOW_POLYGONS = (1, 2)
SHADOW_VERTICES = (3, 8)
SHADOW_RADIUS = (0.2, 0.6)          # of the short side
SHADOW_SOFTNESS = (0.005, 0.04)     # penumbra blur sigma, of the short side
SHADOW_LIGHT = (0.3, 0.7)           # light left in the umbra
SHADOW_TINT = (0.0, 0.15)

WATERMARK_WORDS = ("SAMPLE", "PREVIEW", "COPYRIGHT", "STOCK PHOTO", "PROOF", "DRAFT",
                   "CONFIDENTIAL", "(c) PHOTO", "DO NOT COPY", "WATERMARK")
WATERMARK_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                   cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)
WATERMARK_TILED_PROB = 0.3
WATERMARK_LOGO_PROB = 0.3
WATERMARK_WIDTH = (0.4, 0.85)       # text width, of the image width (single layout)
WATERMARK_TILE_WIDTH = (0.2, 0.35)  # per tile, of the image width
WATERMARK_ANGLE = (-35.0, 35.0)     # degrees
WATERMARK_OPACITY = (0.3, 0.7)
WATERMARK_COLOURS = ("white", "black", "random")
WATERMARK_COLOUR_PROBS = (0.5, 0.2, 0.3)
WATERMARK_RGB = {"white": [1.0, 1.0, 1.0], "black": [0.0, 0.0, 0.0]}
WATERMARK_STROKE = (0.08, 0.2)      # stroke thickness, of the text height

MOIRE_PERIOD = (4.0, 32.0)          # px
MOIRE_CHROMA = (0.3, 1.0)           # R/G/B phase offset, in thirds of a period
MOIRE_WARP = (0.0, 2.0)             # phase warp, in periods
MOIRE_SECOND = (0.0, 0.6)           # relative amplitude of the orthogonal component
MOIRE_AMPLITUDE = (0.15, 0.45)
MOIRE_BLUR = (0.0, 0.8)             # px


def bicubic_round_trip(img: np.ndarray, scale: int) -> np.ndarray:
    """Anti-aliased bicubic downscale by ``scale`` then bicubic upscale to the original size."""
    h, w = img.shape[:2]
    low = Image.fromarray(img).resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.BICUBIC)
    return np.asarray(low.resize((w, h), Image.BICUBIC))


def _sr(task: str, scale: int, clean: np.ndarray) -> Sample:
    return restoration_sample(task, bicubic_round_trip(clean, scale), clean,
                              {"scale": scale, "kernel": "bicubic"}, slots={"scale": f"{scale}x"})


@photo_task
def sr_x2(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """x2 bicubic down/up round trip (deterministic: draws nothing from ``rng``); slots scale="2x"."""
    return _sr("sr_x2", 2, clean)


@photo_task
def sr_x4(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """x4 bicubic down/up round trip (deterministic: draws nothing from ``rng``); slots scale="4x"."""
    return _sr("sr_x4", 4, clean)


@photo_task
def jpeg_artifact(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """JPEG compression at quality 10-40; target = clean."""
    quality = integer(rng, JPEG_QUALITY)
    ok, buf = cv2.imencode(".jpg", clean[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV failed to JPEG-encode the image")
    degraded = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return restoration_sample("jpeg_artifact", degraded, clean, {"quality": quality, "bytes": int(buf.size)})


def random_polygon(h: int, w: int, n_vertices: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular star-shaped polygon (n x 2 int32 xy) centred inside the image."""
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    radii = radius * rng.uniform(0.5, 1.0, n_vertices)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).round().astype(np.int32)


@photo_task
def deshadow(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Soft polygon cast shadows that scale the light per channel; target = clean."""
    h, w = clean.shape[:2]
    side = short_side(clean)
    mask = np.zeros((h, w), np.uint8)
    polygons = []
    for _ in range(integer(rng, SHADOW_POLYGONS)):
        poly = random_polygon(h, w, integer(rng, SHADOW_VERTICES), uniform(rng, SHADOW_RADIUS) * side, rng)
        polygons.append(poly.tolist())
        cv2.fillPoly(mask, [poly], 255, cv2.LINE_AA)
    softness = uniform(rng, SHADOW_SOFTNESS) * side
    soft = cv2.GaussianBlur(to_float(mask), (0, 0), max(softness, 0.5))[..., None]
    light, tint = uniform(rng, SHADOW_LIGHT), uniform(rng, SHADOW_TINT)
    gains = np.clip(light * np.array([1.0 - tint, 1.0, 1.0 + tint], np.float32), 0.0, 1.0)
    out = to_float(clean) * (1.0 - soft * (1.0 - gains))
    params = {"polygons": polygons, "softness": softness, "light": light, "tint": tint}
    return restoration_sample("deshadow", to_uint8(out), clean, params)


def _draw_mark(canvas: np.ndarray, text: str, font: int, scale: float, thickness: int,
               centre: tuple[float, float], logo: bool) -> None:
    """Draw ``text`` (and a ring logo to its left) centred at ``centre`` on a uint8 mask."""
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    r = int(th * 0.9) if logo else 0
    total = tw + (3 * r if logo else 0)
    x0, y0 = int(centre[0] - total / 2), int(centre[1] + th / 2)
    if logo:
        cv2.circle(canvas, (x0 + r, y0 - th // 2), r, 255, max(thickness, 1), cv2.LINE_AA)
        cv2.circle(canvas, (x0 + r, y0 - th // 2), max(r // 3, 1), 255, -1, cv2.LINE_AA)
    cv2.putText(canvas, text, (x0 + 3 * r if logo else x0, y0), font, scale, 255, thickness, cv2.LINE_AA)


@photo_task
def watermark_removal(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Semi-transparent text/logo watermark, single or tiled, rotated; target = clean."""
    h, w = clean.shape[:2]
    word = str(rng.choice(WATERMARK_WORDS))
    text = word if rng.random() < 0.7 else f"{word} {integer(rng, (1990, 2030))}"
    font = int(rng.choice(WATERMARK_FONTS))
    tiled = bool(rng.random() < WATERMARK_TILED_PROB)
    logo = bool(rng.random() < WATERMARK_LOGO_PROB)
    angle = uniform(rng, WATERMARK_ANGLE)
    width = uniform(rng, WATERMARK_TILE_WIDTH if tiled else WATERMARK_WIDTH) * w
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, 1)
    scale = width / max(tw, 1)
    thickness = max(1, int(round(th * scale * uniform(rng, WATERMARK_STROKE))))
    canvas = np.zeros((h, w), np.uint8)
    if tiled:
        step_x, step_y = width * 1.3, max(3.0 * th * scale, h / 6.0)
        for row, cy in enumerate(np.arange(step_y / 2, h + step_y, step_y)):
            for cx in np.arange(-(row % 2) * step_x / 2, w + step_x, step_x):
                _draw_mark(canvas, text, font, scale, thickness, (cx, cy), logo)
        centre = (w / 2, h / 2)
    else:  # keep the unrotated text inside the frame
        centre = (uniform(rng, (width / 2, max(w - width / 2, width / 2))), uniform(rng, (0.2 * h, 0.8 * h)))
        _draw_mark(canvas, text, font, scale, thickness, centre, logo)
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)
    mask = cv2.warpAffine(canvas, rot, (w, h), flags=cv2.INTER_LINEAR)
    opacity = uniform(rng, WATERMARK_OPACITY)
    colour_kind = str(rng.choice(WATERMARK_COLOURS, p=WATERMARK_COLOUR_PROBS))
    covered = mask > 127
    under = float(cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)[covered].mean()) / 255.0 if covered.any() else 0.5
    # Keep the mark visible: white on a bright area becomes black, black on a dark one white.
    if colour_kind == "white" and under > 0.75:
        colour_kind = "black"
    elif colour_kind == "black" and under < 0.25:
        colour_kind = "white"
    colour = WATERMARK_RGB.get(colour_kind) or rng.uniform(0, 1, 3).round(3).tolist()
    m = to_float(mask)[..., None] * np.float32(opacity)
    out = to_float(clean) * (1.0 - m) + np.asarray(colour, np.float32) * m
    params = {"text": text, "font": font, "tiled": tiled, "logo": logo, "angle": angle,
              "scale": scale, "thickness": thickness, "opacity": opacity,
              "colour": colour_kind, "rgb": colour, "coverage": float(covered.mean())}
    return restoration_sample("watermark_removal", to_uint8(out), clean, params)


def moire_pattern(shape: tuple[int, int], p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """HxWx3 float32 moire modulation in [-1, 1] (see module docstring for the model)."""
    h, w = shape
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    theta = np.float32(p["angle"])
    warp = smooth_field(shape, p["warp_cells"], rng) * np.float32(2 * np.pi * p["warp"])
    phase = (xs * np.cos(theta) + ys * np.sin(theta)) * np.float32(2 * np.pi / p["period"]) + warp
    offsets = np.float32(2 * np.pi / 3 * p["chroma"]) * np.arange(3, dtype=np.float32)
    pattern = np.cos(phase[..., None] - offsets)
    if p["second"] > 0:
        t2 = theta + np.float32(np.pi / 2 + p["second_angle"])
        phase2 = (xs * np.cos(t2) + ys * np.sin(t2)) * np.float32(2 * np.pi / p["second_period"]) + warp
        pattern = (pattern + np.float32(p["second"]) * np.cos(phase2)[..., None]) / np.float32(1 + p["second"])
    return pattern


@photo_task
def demoire(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Screen-capture moire: colour beat bands modulating the image; target = clean."""
    p: dict[str, Any] = {
        "period": uniform(rng, MOIRE_PERIOD), "angle": uniform(rng, (0.0, np.pi)),
        "chroma": uniform(rng, MOIRE_CHROMA), "warp": uniform(rng, MOIRE_WARP),
        "warp_cells": integer(rng, (2, 4)), "second": uniform(rng, MOIRE_SECOND),
        "second_period": uniform(rng, MOIRE_PERIOD), "second_angle": float(rng.normal(0.0, 0.3)),
        "amplitude": uniform(rng, MOIRE_AMPLITUDE), "blur": uniform(rng, MOIRE_BLUR)}
    strength = np.float32(p["amplitude"]) * (0.3 + 0.7 * smooth_field(clean.shape[:2], 3, rng))
    out = to_float(clean) * (1.0 + strength[..., None] * moire_pattern(clean.shape[:2], p, rng))
    if p["blur"] > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), p["blur"])
    return restoration_sample("demoire", to_uint8(out), clean, p)


@photo_task
def colorize(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Grey (BT.601 luma) input, colour target (deterministic: draws nothing from ``rng``)."""
    grey = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)
    return restoration_sample("colorize", cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), clean, {"luma": "BT.601"})
