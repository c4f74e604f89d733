"""Writing a result: its image and typed outputs as one set, with stated conventions, and the
checks of input and output paths that run before anything heavy loads.

For an output ``NAME.png``: ``NAME.mask.png`` (0/255), ``NAME.boxes.json`` (xyxy pixels, x2/y2
exclusive), ``NAME.depth.npy`` (float32 metres) and ``NAME.depth16.png`` (uint16 millimetres,
0 = no value), ``NAME.normals.npy`` (float32 unit vectors, camera frame: x right, y up, z toward
the camera; (0, 0, 0) where the output encodes no direction), ``NAME.labels.png`` (class ids,
8-bit when they fit, else 16-bit).

:func:`write_output_set` writes the image and its typed files as one set: everything is encoded
first, written to temporary files, then renamed into place under a lock on the folder, and typed
files of the same stem that the new result does not have (a ``NAME.depth.npy`` left by an earlier
run with another task) are removed; a failure (disk full) leaves the previous set untouched.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import math
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from pixwizard.imageio import _atomic_write, npy_bytes
from pixwizard.tasks.codecs import Decoded

if TYPE_CHECKING:
    import argparse

# Every typed sibling this module writes, by kind: NAME + suffix.
TYPED_SUFFIXES = {"mask": ".mask.png", "boxes": ".boxes.json", "depth": ".depth.npy", "depth16": ".depth16.png",
                  "normals": ".normals.npy", "labels": ".labels.png"}


def check_input_path(path: str | os.PathLike) -> Path:
    """A one-line error now, before any model loads, for an input that cannot be read."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, not an image file")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{p}: permission denied")
    return p


def check_output_path(path: str | os.PathLike) -> Path:
    """A one-line error now, before any model loads or runs, for an output path that cannot be
    written: an unknown image extension, an existing directory, or a folder that is missing and
    cannot be made (a file in the way) or is not writable. Missing folders are made on writing."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p}: is a directory; give an output file path such as {p / 'out.png'}")
    if Image.registered_extensions().get(p.suffix.lower()) is None:
        raise ValueError(f"{p}: unknown image extension {p.suffix!r}; use e.g. .png or .jpg")
    parent = p.absolute().parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{p}: cannot make its folder {parent}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{p}: the folder {existing} is not writable")
    return p


def typed_files(decoded: Decoded | None, task: str | None) -> dict[str, bytes]:
    """The typed outputs of ``decoded`` encoded as file contents: {kind: bytes}."""
    if decoded is None:
        return {}
    files: dict[str, bytes] = {}
    if decoded.mask is not None:
        files["mask"] = _png(decoded.mask.astype(np.uint8) * 255)
    if decoded.boxes is not None:
        doc = {"task": task, "format": "xyxy pixels, x2/y2 exclusive", "boxes": decoded.boxes}
        files["boxes"] = json.dumps(doc, indent=2).encode()
    if decoded.depth is not None:
        depth = decoded.depth.astype(np.float32)
        files["depth"] = npy_bytes(depth)
        mm = np.where(np.isfinite(depth), np.clip(np.round(depth * 1000), 0, 65535), 0).astype(np.uint16)
        files["depth16"] = _png16(mm)
    if decoded.normals is not None:
        files["normals"] = npy_bytes(unit_normals(decoded.normals))
    if decoded.labels is not None:
        labels = decoded.labels
        files["labels"] = (_png(labels.astype(np.uint8)) if labels.max(initial=0) < 256
                           else _png16(labels.astype(np.uint16)))
    return files


def unit_normals(normals: np.ndarray) -> np.ndarray:
    """float32 unit vectors; (0, 0, 0) where a vector is missing (NaN) or has no direction."""
    n = np.nan_to_num(np.asarray(normals, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(norm > 1e-6, n / np.maximum(norm, 1e-6), 0.0).astype(np.float32)


def write_output_set(image_path: str | os.PathLike, image: np.ndarray, decoded: Decoded | None,
                     task: str | None) -> dict[str, Path]:
    """Write ``image`` at ``image_path`` and its typed outputs beside it as one set (see the module
    doc); returns {kind: path} with kind "image" first."""
    out = check_output_path(image_path)
    fmt = Image.registered_extensions()[out.suffix.lower()]
    files = {"image": _encode_image(image, fmt, out)}
    files.update(typed_files(decoded, task))
    stem = out.with_suffix("")
    paths = {kind: (out if kind == "image" else Path(f"{stem}{TYPED_SUFFIXES[kind]}")) for kind in files}
    out.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out.parent):
        temps: dict[str, Path] = {}
        try:
            for kind, data in files.items():
                temps[kind] = _write_temp(paths[kind], data)
            for kind in [k for k in files if k != "image"] + ["image"]:
                os.replace(temps.pop(kind), paths[kind])
        except OSError as e:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
            reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise OSError(e.errno, f"could not write {out} and its typed outputs ({reason}); "
                                   "the previous files there were left as they were") from None
        for kind, suffix in TYPED_SUFFIXES.items():
            if kind not in files:
                Path(f"{stem}{suffix}").unlink(missing_ok=True)
        _fsync_dir(out.parent)
    return paths


class _folder_lock:
    """An exclusive flock on a folder: two writers of output sets in one folder take turns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd = -1

    def __enter__(self) -> "_folder_lock":
        self.fd = os.open(self.folder, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _write_temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_image(image: np.ndarray, fmt: str, path: Path) -> bytes:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"an output image must be uint8 HxW, HxWx3 or HxWx4, got {arr.dtype} {arr.shape}")
    if fmt == "JPEG" and arr.ndim == 3 and arr.shape[2] == 4:
        raise ValueError(f"{path}: JPEG has no alpha channel; save RGBA as .png or .webp")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt)
    return buf.getvalue()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def _png16(arr: np.ndarray) -> bytes:
    import cv2  # imported where used: a run that needs no OpenCV starts faster

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr, dtype=np.uint16))
    if not ok:
        raise ValueError("OpenCV could not encode a 16-bit PNG")
    return buf.tobytes()


def write_typed_outputs(image_path: str | Path, decoded: Decoded | None, task: str | None) -> dict[str, Path]:
    """Write only the typed fields of ``decoded`` beside ``image_path`` (each file atomically) and
    remove stale typed siblings of the same stem; returns {kind: path}. Prefer
    :func:`write_output_set`, which writes the image too, as one set."""
    stem = Path(image_path).with_suffix("")
    written = {kind: _atomic_write(f"{stem}{TYPED_SUFFIXES[kind]}", lambda f, d=data: f.write(d))
               for kind, data in typed_files(decoded, task).items()}
    for kind, suffix in TYPED_SUFFIXES.items():
        if kind not in written:
            Path(f"{stem}{suffix}").unlink(missing_ok=True)
    return written


def check_run_options(args: "argparse.Namespace") -> Path:
    """Every check that needs no model, run before anything heavy loads (also for batch mode and
    the server): the options, the input file and the output path. Returns the output path."""
    from pixwizard.tasks.registry import get_task

    if not args.instruction.strip():
        raise ValueError("the instruction is empty: say what to do with the image")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if not 0 <= args.seed < 2 ** 63:
        raise ValueError(f"--seed must be in [0, 2**63), got {args.seed}")
    for name in ("text_guidance", "image_guidance"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    if args.size is not None and args.size < 8:
        raise ValueError(f"--size must be at least 8 pixels, got {args.size}")
    if args.task is not None and not getattr(args, "adapter", None):  # an adapter may bring the task
        get_task(args.task)
    check_input_path(args.image)
    return check_output_path(args.output if args.output else f"{Path(args.image).stem}.pixwizard.png")
