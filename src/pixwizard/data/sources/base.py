"""Shared machinery for the public-dataset adapters.

Conventions every adapter follows:

- An adapter is built from a user-supplied ``root`` folder holding the dataset in its native
  published layout and a ``split``. Building it only scans file names / annotation files (an
  index); images are decoded when a sample is asked for, so ``len()`` is cheap and exact.
- Index ``i`` always maps to the same ``Sample`` (sorted file names, seeds derived from
  ``(seed, i)``): the shard writer may fetch samples in any order, in parallel.
- Input and target images are HxWx3 uint8 RGB of the same size. When a published pair differs
  by a few pixels both are centre-cropped to the common size, recorded in
  ``meta["aligned"]``; a larger mismatch is a :class:`CorruptSourceError`.
- Problems with the dataset as a whole (missing root, layout not recognised) raise
  :class:`SourceLayoutError` (a ``FileNotFoundError``) at build time naming the files expected.
  Problems with one item (a truncated image, a file the annotations name but that is missing,
  a misaligned pair) raise :class:`CorruptSourceError` when that item is loaded, so a shard
  writer can skip and count it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from pixwizard.data.sample import Sample

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class SourceLayoutError(FileNotFoundError):
    """The root folder is missing or does not hold the dataset's native layout."""


class CorruptSourceError(RuntimeError):
    """One item of a dataset cannot be read (corrupt or missing file, misaligned pair).

    ``path`` names the offending file (or the first file of the pair); ``reason`` says why.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@runtime_checkable
class Source(Protocol):
    """A dataset adapter: an indexed, deterministic sequence of ``Sample`` records."""

    name: str
    split: str
    tasks: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def __iter__(self) -> Iterator[Sample]: ...


E = TypeVar("E")


@dataclass
class IndexedSource(Generic[E]):
    """A ``Source`` made of a list of lightweight entries and a function that loads one.

    ``load(entry, index)`` returns the ``Sample`` for that entry; ``index`` is its position,
    used to derive per-item seeds.
    """

    name: str
    split: str
    tasks: tuple[str, ...]
    entries: list[E]
    load: Callable[[E, int], Sample]
    root: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self.entries) <= index < len(self.entries):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self.entries)} samples")
        index %= len(self.entries)
        sample = self.load(self.entries[index], index)
        sample.meta.setdefault("source", self.name)
        sample.meta.setdefault("split", self.split)
        sample.meta.setdefault("index", index)
        return sample

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self.entries)):
            yield self[i]

    def iter_samples(self) -> Iterator[Sample]:
        """Same as ``iter(self)``; yields every sample in index order."""
        return iter(self)


# --------------------------------------------------------------------------------------- layout


def require_root(root: Path | str, dataset: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise SourceLayoutError(f"{dataset}: dataset root {root} does not exist or is not a folder")
    return root


def first_existing(candidates: Sequence[Path], dataset: str, what: str) -> Path:
    """The first path that exists, or a ``SourceLayoutError`` listing every candidate."""
    for path in candidates:
        if path.exists():
            return path
    listed = ", ".join(str(p) for p in candidates)
    raise SourceLayoutError(f"{dataset}: layout not recognised, expected {what} at one of: {listed}")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (extension case-insensitive)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (for JSON-able meta)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The per-item random generator: a pure function of the source seed and item index."""
    return np.random.default_rng([seed, index])


# ------------------------------------------------------------------------------------------- IO


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise CorruptSourceError(path, "file is missing")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise CorruptSourceError(path, f"cannot decode image ({err})") from err
    return image


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (greyscale and palette images are expanded)."""
    return np.asarray(_open(path).convert("RGB"), dtype=np.uint8).copy()


def read_raw(path: Path) -> np.ndarray:
    """An image file's stored values without colour conversion: label maps stay indices,
    16-bit PNGs stay 16-bit (returned as ``np.uint16``/``int32`` arrays)."""
    image = _open(path)
    if image.mode == "P":  # palette PNG: the indices are the values
        return np.asarray(image, dtype=np.uint8).copy()
    array = np.asarray(image)
    if image.mode.startswith("I;16"):
        return array.astype(np.uint16)
    return array.copy()


def resize_bicubic(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an HxWx3 uint8 image to ``size_hw`` (OpenCV, clipped to uint8)."""
    h, w = size_hw
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)


def centre_crop(array: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    h, w = size_hw
    top = (array.shape[0] - h) // 2
    left = (array.shape[1] - w) // 2
    return array[top:top + h, left:left + w]


def align_pair(inp: np.ndarray, tgt: np.ndarray, path: Path, max_mismatch: int,
               meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop both images to their common size when they differ by ``<= max_mismatch``
    pixels per side length; record the original sizes in ``meta["aligned"]``. A larger
    mismatch raises ``CorruptSourceError``."""
    if inp.shape[:2] == tgt.shape[:2]:
        return inp, tgt
    dh = abs(inp.shape[0] - tgt.shape[0])
    dw = abs(inp.shape[1] - tgt.shape[1])
    if max(dh, dw) > max_mismatch:
        raise CorruptSourceError(path, f"input {inp.shape[:2]} and target {tgt.shape[:2]} differ by more "
                                       f"than {max_mismatch} px")
    common = (min(inp.shape[0], tgt.shape[0]), min(inp.shape[1], tgt.shape[1]))
    meta["aligned"] = {"input_hw": list(inp.shape[:2]), "target_hw": list(tgt.shape[:2]),
                       "cropped_to_hw": list(common), "method": "centre_crop"}
    return centre_crop(inp, common), centre_crop(tgt, common)
