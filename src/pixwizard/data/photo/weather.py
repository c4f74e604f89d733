"""Weather degradations: ``derain``, ``raindrop_removal``, ``dehaze``, ``desnow``.

Models (values in [0, 1] sRGB; sizes in fractions of the short side unless marked px):
- derain (Rain100L/H, Yang et al. 2017): O = a * (B + sum_i S_i) + (1 - a) * A. A light
  (Rain100L-like) sample has one streak layer and no veil; a heavy (Rain100H-like) sample has
  2-4 layers of nearby angles and an atmospheric veil a ~ U(0.75, 0.95), A ~ U(0.7, 1.0).
  Each layer: ``RAIN_DENSITY`` streaks per pixel (at least ``MIN_STREAKS``), length
  ``RAIN_LENGTH`` of the short side (x U(0.6, 1.4) per streak), angle ``RAIN_ANGLE`` degrees from
  vertical (+-10 per layer), 1 px wide softened by ``RAIN_WIDTH`` px, brightness ``RAIN_INTENSITY``.
- raindrop_removal (Qian et al. 2018 "Attentive GAN" data: drops on glass, out of focus): each
  drop is an ellipse acting as a small inverted lens; its pixels show the scene around it,
  flipped and minified by ``DROP_MAGNIFICATION``, blurred by ``DROP_BLUR`` px, slightly
  brightened, with a soft dark rim.
- dehaze (RESIDE, Li et al. 2019): I = J t + A (1 - t), t = exp(-beta d) with beta ~ U(0.6, 1.8),
  A ~ U(0.7, 1.0) and a pseudo depth d in [0, 1]: a vertical gradient (top = far) blended with a
  smooth random field.
- desnow (Snow100K, Liu et al. 2018): K = J (1 - z) + C z over 1-3 flake layers (flake diameter
  0.4-2.5% of the short side, defocus blur 0.3-1.5 px, density, fall angle and motion length per
  layer, combined as z = 1 - prod(1 - b_i z_i)) plus a veil J <- J (1 - v) + v A, v ~ U(0, 0.3).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pixwizard.data.photo.common import (integer, log_uniform, photo_task,
                                         restoration_sample, short_side, smooth_field, to_float,
                                         to_uint8, uniform)
from pixwizard.data.sample import Sample

MIN_STREAKS = 4                      # per layer, so that small images are never left clean
RAIN_HEAVY_PROB = 0.5
RAIN_LAYERS_HEAVY = (2, 4)
RAIN_DENSITY = (0.0005, 0.004)       # streaks per pixel, per layer (log-uniform)
RAIN_LENGTH = (0.04, 0.15)           # of the short side
RAIN_ANGLE = (-30.0, 30.0)           # degrees from vertical
RAIN_LAYER_ANGLE_JITTER = 10.0       # degrees
RAIN_WIDTH = (0.3, 1.0)              # px, Gaussian sigma across the streak
RAIN_INTENSITY = (0.5, 0.95)
RAIN_VEIL = (0.75, 0.95)             # a: share of the scene kept under the veil
VEIL_LIGHT = (0.7, 1.0)              # A

DROP_COUNT = (8, 40)
DROP_RADIUS = (0.02, 0.08)           # of the short side (log-uniform)
DROP_ASPECT = (0.7, 1.4)             # vertical / horizontal radius
DROP_MAGNIFICATION = (1.5, 3.5)      # scene extent seen through a drop / drop size
DROP_BLUR = (0.5, 2.5)               # px
DROP_BRIGHTEN = (1.0, 1.15)
DROP_RIM = (0.0, 0.35)

HAZE_BETA = (0.6, 1.8)
HAZE_LIGHT = (0.7, 1.0)
HAZE_GRADIENT_WEIGHT = (0.3, 0.9)
HAZE_FIELD_CELLS = (2, 6)

SNOW_LAYERS = (1, 3)
SNOW_DENSITY = (0.0005, 0.006)       # per layer
SNOW_SIZE = (0.004, 0.025)           # flake diameter, of the short side (at least 1 px)
SNOW_SOFTEN = (0.3, 1.5)             # px, Gaussian blur of the flakes (out of focus)
SNOW_MOTION = (0.0, 0.03)            # streak length, of the short side
SNOW_ANGLE = (-40.0, 40.0)           # degrees from vertical
SNOW_BRIGHTNESS = (0.7, 1.0)
SNOW_COLOUR = (0.85, 1.0)            # C
SNOW_VEIL = (0.0, 0.3)               # v


def streak_layer(shape: tuple[int, int], density: float, length: float, angle: float, thickness: int,
                 soften: float, rng: np.random.Generator) -> np.ndarray:
    """An HxW float32 layer of streaks (rain) or flakes (snow) with values in [0, 1].

    About ``density * H * W`` (Poisson, at least ``MIN_STREAKS``) anti-aliased segments, centred uniformly (also a little
    outside the frame so streaks enter from the border), each ``length * U(0.6, 1.4)`` px long at
    ``angle`` degrees from vertical, ``thickness`` px wide with round caps (length 0 -> a disc),
    brightness U(0.5, 1); then Gaussian-softened by ``soften`` px. One-pixel streaks are rescaled
    after softening so that their ridge keeps its brightness.
    """
    h, w = shape
    n = max(int(rng.poisson(density * h * w)), MIN_STREAKS)
    margin = length / 2 + thickness
    centres = rng.uniform((-margin, -margin), (w + margin, h + margin), (n, 2))
    half = length / 2 * rng.uniform(0.6, 1.4, n)[:, None] * np.array(
        [np.sin(np.radians(angle)), np.cos(np.radians(angle))])
    values = rng.uniform(127.5, 255.0, n)
    shift = 4  # sub-pixel precision bits for cv2.line
    p0 = np.round((centres - half) * (1 << shift)).astype(np.int64).tolist()
    p1 = np.round((centres + half) * (1 << shift)).astype(np.int64).tolist()
    canvas = np.zeros((h, w), np.uint8)
    for a, b, v in zip(p0, p1, values.tolist()):
        cv2.line(canvas, a, b, v, thickness, cv2.LINE_AA, shift)
    layer = canvas.astype(np.float32) * np.float32(1.0 / 255.0)
    if soften > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), soften)
        if thickness == 1:
            ksize = 2 * int(np.ceil(3 * soften)) + 1
            layer *= np.float32(1.0 / cv2.getGaussianKernel(ksize, soften).max())
    return np.minimum(layer, 1.0)


@photo_task
def derain(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Rain streaks, Rain100L-like (one layer) or Rain100H-like (2-4 layers + veil); target = clean."""
    side = short_side(clean)
    heavy = bool(rng.random() < RAIN_HEAVY_PROB)
    n_layers = integer(rng, RAIN_LAYERS_HEAVY) if heavy else 1
    base_angle = uniform(rng, RAIN_ANGLE)
    x = to_float(clean)
    rain = np.zeros(clean.shape[:2], np.float32)
    layers: list[dict[str, Any]] = []
    for _ in range(n_layers):
        p = {"density": log_uniform(rng, RAIN_DENSITY), "length": uniform(rng, RAIN_LENGTH) * side,
             "angle": base_angle + uniform(rng, (-RAIN_LAYER_ANGLE_JITTER, RAIN_LAYER_ANGLE_JITTER)),
             "width": uniform(rng, RAIN_WIDTH), "intensity": uniform(rng, RAIN_INTENSITY)}
        layers.append(p)
        rain += p["intensity"] * streak_layer(clean.shape[:2], p["density"], p["length"], p["angle"], 1,
                                              p["width"], rng)
    out = x + rain[..., None]
    params: dict[str, Any] = {"heavy": heavy, "layers": layers}
    if heavy:
        keep, light = uniform(rng, RAIN_VEIL), uniform(rng, VEIL_LIGHT)
        out = keep * out + (1.0 - keep) * light
        params.update(veil=keep, light=light)
    return restoration_sample("derain", to_uint8(out), clean, params)


@photo_task
def raindrop_removal(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Out-of-focus raindrops on glass, each a small inverted lens; target = clean."""
    h, w = clean.shape[:2]
    side = short_side(clean)
    n = integer(rng, DROP_COUNT)
    blur, bright, rim = uniform(rng, DROP_BLUR), uniform(rng, DROP_BRIGHTEN), uniform(rng, DROP_RIM)
    map_x = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w))
    alpha = np.zeros((h, w), np.float32)
    drops = []
    for _ in range(n):
        rx = log_uniform(rng, DROP_RADIUS) * side
        ry = rx * uniform(rng, DROP_ASPECT)
        cx, cy = uniform(rng, (0, w - 1)), uniform(rng, (0, h - 1))
        mag = uniform(rng, DROP_MAGNIFICATION)
        drops.append({"cx": cx, "cy": cy, "rx": rx, "ry": ry, "magnification": mag})
        x0, x1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, w)
        y0, y1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, h)
        gx, gy = map_x[y0:y1, x0:x1], map_y[y0:y1, x0:x1]
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        r2 = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
        inside = np.broadcast_to(r2 < 1.0, gx.shape)
        # Inverted lens: the drop shows a flipped view `mag` times wider, bending more at its edge.
        bend = mag * (1.0 + 0.3 * r2)
        gx[inside] = np.broadcast_to(cx - (xs - cx) * bend, gx.shape)[inside]
        gy[inside] = np.broadcast_to(cy - (ys - cy) * bend, gy.shape)[inside]
        a = alpha[y0:y1, x0:x1]
        np.maximum(a, np.clip((1.0 - r2) * 4.0, 0.0, 1.0), out=a)
    x = to_float(clean)
    seen = cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    seen = cv2.GaussianBlur(seen, (0, 0), blur) * np.float32(bright)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(blur * 0.5, 0.3))[..., None]
    ring = 4.0 * alpha * (1.0 - alpha)
    out = (x * (1.0 - alpha) + seen * alpha) * (1.0 - rim * ring)
    params = {"count": n, "blur": blur, "brighten": bright, "rim": rim, "drops": drops}
    return restoration_sample("raindrop_removal", to_uint8(out), clean, params)


def pseudo_depth(shape: tuple[int, int], gradient_weight: float, cells: int,
                 rng: np.random.Generator) -> np.ndarray:
    """HxW float32 pseudo depth in [0, 1] (1 = far): top-to-bottom gradient blended with a smooth field."""
    h, w = shape
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    d = gradient_weight * ramp + (1.0 - gradient_weight) * smooth_field(shape, cells, rng)
    return (d - d.min()) / max(float(d.max() - d.min()), 1e-6)


@photo_task
def dehaze(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d); target = clean."""
    beta, light = uniform(rng, HAZE_BETA), uniform(rng, HAZE_LIGHT)
    weight, cells = uniform(rng, HAZE_GRADIENT_WEIGHT), integer(rng, HAZE_FIELD_CELLS)
    t = np.exp(-beta * pseudo_depth(clean.shape[:2], weight, cells, rng))[..., None]
    out = to_float(clean) * t + light * (1.0 - t)
    params = {"beta": beta, "light": light, "gradient_weight": weight, "field_cells": cells,
              "min_transmission": float(t.min())}
    return restoration_sample("dehaze", to_uint8(out), clean, params)


@photo_task
def desnow(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """Snow flakes in 1-3 layers, K = J (1 - z) + C z, plus a veil; target = clean."""
    side = short_side(clean)
    n_layers = integer(rng, SNOW_LAYERS)
    keep = np.ones(clean.shape[:2], np.float32)  # running prod(1 - z_i)
    layers = []
    for _ in range(n_layers):
        p = {"density": log_uniform(rng, SNOW_DENSITY),
             "size": max(int(round(uniform(rng, SNOW_SIZE) * side)), 1),
             "motion": uniform(rng, SNOW_MOTION) * side, "angle": uniform(rng, SNOW_ANGLE),
             "soften": uniform(rng, SNOW_SOFTEN), "brightness": uniform(rng, SNOW_BRIGHTNESS)}
        layers.append(p)
        z = streak_layer(clean.shape[:2], p["density"], p["motion"], p["angle"], p["size"], p["soften"], rng)
        keep *= 1.0 - p["brightness"] * z
    colour, veil, light = uniform(rng, SNOW_COLOUR), uniform(rng, SNOW_VEIL), uniform(rng, VEIL_LIGHT)
    x = to_float(clean) * (1.0 - veil) + veil * light
    z = (1.0 - keep)[..., None]
    out = x * (1.0 - z) + colour * z
    params = {"layers": layers, "colour": colour, "veil": veil, "light": light}
    return restoration_sample("desnow", to_uint8(out), clean, params)
