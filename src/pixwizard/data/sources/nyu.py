"""NYU Depth v2 adapter (the extracted BTS / Eigen-split layout) -> depth, and normals derived from it.

Expected native layout (as produced by the BTS ``sync`` download and ``official_splits``
extraction of the labelled ``.mat``; depth PNGs are 16-bit, millimetres, 0 = no reading)::

    root/                                   (e.g. dataset/nyu_depth_v2)
      sync/<scene>/rgb_00000.jpg            train split
      sync/<scene>/sync_depth_00000.png
      official_splits/test/<scene>/rgb_00045.jpg         test split (the 654 Eigen test images)
      official_splits/test/<scene>/sync_depth_00045.png

Optionally the split lists shipped with BTS (``nyudepthv2_{train,test}_files_with_gt.txt``,
lines ``<rgb> <depth> <focal>`` relative to the split folder, train paths with a leading ``/``)
can be passed as ``split_file=``; lines whose depth is ``None`` are skipped.

Truth: ``depth`` HxW float32 metres (camera z), NaN where the sensor gave 0. ``normals`` (only
when ``"normals"`` is in ``tasks``) are derived from the depth, not the NYU normal ground truth:
pixels are back-projected with the Kinect intrinsics (fx 518.8579, fy 519.4696, cx 325.5824,
cy 253.7362 at 640x480, scaled with the image size), the normal is the cross product of the
central-difference tangents, expressed in the sample frame (x right, y up, z toward the camera)
and NaN where any neighbour has no depth. Depth edges make those normals unreliable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, read_raw, read_rgb,
                                         relpath, require_root)

NYU_INTRINSICS_640x480 = (518.8579, 519.4696, 325.5824, 253.7362)  # fx, fy, cx, cy (pixels)
DEPTH_SCALE = 1000.0  # PNG value per metre
SPLIT_DIRS = {"train": ("sync",), "test": ("official_splits", "test")}
NYU_TASKS = ("depth", "normals")


@dataclass(frozen=True)
class _Entry:
    rgb: Path
    depth: Path
    task: str


def normals_from_depth(depth: np.ndarray, intrinsics: tuple[float, float, float, float]) -> np.ndarray:
    """HxW metric depth (camera z, NaN = unknown) -> HxWx3 float32 unit normals in the frame
    x right, y up, z toward the camera; NaN where the depth or a neighbour is unknown."""
    fx, fy, cx, cy = intrinsics
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = depth.astype(np.float64)
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)  # OpenCV frame: x right, y down, z forward
    d_du = np.gradient(points, axis=1)
    d_dv = np.gradient(points, axis=0)
    n = np.cross(d_dv, d_du)  # faces the camera (negative z) for visible surfaces
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[..., 1:] *= -1.0  # OpenCV (y down, z forward) -> sample frame (y up, z toward the camera)
    return n.astype(np.float32)


def _scan(folder: Path) -> list[tuple[Path, Path]]:
    """Every ``<scene>/rgb_N.jpg`` with its expected ``sync_depth_N.png`` (a missing depth file
    surfaces as a ``CorruptSourceError`` when that item is loaded)."""
    return [(rgb, rgb.with_name("sync_depth_" + rgb.stem[len("rgb_"):] + ".png"))
            for rgb in sorted(folder.glob("*/rgb_*.jpg"))]


def _from_list(folder: Path, split_file: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[1] == "None":
            continue
        pairs.append((folder / parts[0].lstrip("/"), folder / parts[1].lstrip("/")))
    return pairs


def build_nyuv2(root: Path | str, split: str = "test", *, tasks: Sequence[str] = ("depth",),
                split_file: Path | str | None = None, **_: Any) -> IndexedSource:
    """NYUv2 ``train`` (``sync``) or ``test`` (``official_splits/test``) -> depth / normals."""
    name = "nyuv2"
    root = require_root(root, name)
    if split not in SPLIT_DIRS:
        raise ValueError(f"{name}: split must be one of {sorted(SPLIT_DIRS)}, got {split!r}")
    bad = [t for t in tasks if t not in NYU_TASKS]
    if bad or not tasks:
        raise ValueError(f"{name}: tasks must be a non-empty subset of {NYU_TASKS}, got {list(tasks)}")
    folder = root.joinpath(*SPLIT_DIRS[split])
    if not folder.is_dir():
        raise SourceLayoutError(f"{name}: layout not recognised, expected the folder {folder} holding "
                                f"<scene>/rgb_XXXXX.jpg and <scene>/sync_depth_XXXXX.png")
    pairs = _from_list(folder, Path(split_file)) if split_file is not None else _scan(folder)
    if not pairs:
        raise SourceLayoutError(f"{name}: no <scene>/rgb_XXXXX.jpg (with sync_depth_XXXXX.png) under {folder}")
    entries = [_Entry(rgb, depth, t) for rgb, depth in pairs for t in tasks]

    def load(entry: _Entry, index: int) -> Sample:
        image = read_rgb(entry.rgb)
        raw = read_raw(entry.depth)
        if raw.ndim != 2 or raw.shape != image.shape[:2]:
            raise CorruptSourceError(entry.depth, f"depth PNG is {raw.shape}, expected a single channel "
                                                  f"{image.shape[:2]} map")
        depth = raw.astype(np.float32) / DEPTH_SCALE
        depth[raw == 0] = np.nan
        meta = {"file": relpath(entry.rgb, root), "depth_file": relpath(entry.depth, root)}
        if entry.task == "depth":
            return Sample(task="depth", input=image, truth={"depth": depth}, meta=meta)
        h, w = depth.shape
        fx, fy, cx, cy = NYU_INTRINSICS_640x480
        sx, sy = w / 640.0, h / 480.0
        intr = (fx * sx, fy * sy, cx * sx, cy * sy)
        normals = normals_from_depth(depth, intr)
        return Sample(task="normals", input=image, truth={"normals": normals, "depth": depth},
                      meta={**meta, "normals_from": "depth", "intrinsics": list(intr)})

    return IndexedSource(name=name, split=split, tasks=tuple(tasks), entries=entries, load=load, root=root)
