"""Paired restoration benchmarks in their native layouts -> (degraded input, clean target) samples.

Every adapter reduces its layout to a list of ``Pair(input, target, task)``; one loader reads,
aligns and wraps them (``truth["image"]`` = the clean target). Expected layouts
(``root`` may also be the inner folder where noted):

- SIDD (denoise), ``split="train"``: ``SIDD_Medium_Srgb/Data/<scene>/<n>_NOISY_SRGB_<k>.PNG`` with
  ``<n>_GT_SRGB_<k>.PNG`` (root = the folder holding ``SIDD_Medium_Srgb``, or it, or its ``Data``).
  ``split="val"``: ``ValidationNoisyBlocksSrgb.mat`` + ``ValidationGtBlocksSrgb.mat`` in root
  (uint8 arrays 40x32x256x256x3; one sample per block), read with ``scipy.io.loadmat``.
- Rain100L / Rain100H (derain): ``rainy/rain-001.png`` + ``norain/norain-001.png`` (JORDER
  release; ``rain/`` is accepted for ``rainy/``), or ``input/1.png`` + ``target/1.png`` (the
  MPRNet/Restormer test-set layout). Files pair by name with a leading ``rain-``/``norain-``
  removed. A ``train``/``test`` subfolder of root is used when present.
- GoPro (deblur_motion): ``GOPRO_Large/{train,test}/<sequence>/blur/000047.png`` +
  ``sharp/000047.png`` (``blur_dir="blur_gamma"`` for the gamma-blurred inputs).
- LOL-v2 (lowlight): ``LOL-v2/Real_captured/{Train,Test}/Low/low00690.png`` +
  ``Normal/normal00690.png`` (``subset="Synthetic"`` for the synthetic half; same names).
- RESIDE SOTS / ITS / OTS (dehaze): ``SOTS/{outdoor,indoor}/hazy/0001_0.8_0.2.jpg`` +
  ``gt/0001.png`` (``clear/`` accepted for ``gt/``); pairs by the id before the first ``_``.
  SOTS-indoor GT images are 20 px larger than the hazy ones: both are centre-cropped.
- Snow100K (desnow): ``Snow100K/test/Snow100K-{S,M,L}/synthetic/*.jpg`` + ``gt/*.jpg`` (same
  names; ``split="train"`` reads ``all/synthetic`` + ``all/gt``).
- DIV2K (sr_x2, sr_x4): ``DIV2K_{train,valid}_HR/0801.png`` +
  ``DIV2K_{train,valid}_LR_bicubic/X{2,4}/0801x{2,4}.png``; the LR input is resized bicubic
  to the HR size so input and target align, ``slots["scale"]`` = ``"2"``/``"4"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, align_pair,
                                         first_existing, list_images, read_rgb, relpath, require_root,
                                         resize_bicubic)

MAX_MISMATCH_PX = 32  # larger size differences inside a pair are treated as corrupt


@dataclass(frozen=True)
class Pair:
    """One degraded/clean pair; ``target`` None when no clean file matched (loading raises)."""

    input: Path
    target: Path | None
    task: str
    slots: dict[str, str] = field(default_factory=dict, hash=False)
    upsample_input: bool = False  # resize the input bicubic to the target size (super-resolution)


def pair_by_key(input_dir: Path, target_dir: Path, key: Callable[[Path], str], task: str) -> list[Pair]:
    """Pair every image in ``input_dir`` with the image in ``target_dir`` of the same ``key``."""
    targets = {key(p): p for p in list_images(target_dir)}
    return [Pair(p, targets.get(key(p)), task) for p in list_images(input_dir)]


def _split_folder(root: Path, split: str, names: dict[str, Sequence[str]]) -> Path:
    """``root/<name>`` for the first existing folder name of ``split``, else ``root`` itself."""
    for name in names.get(split, (split,)):
        if (root / name).is_dir():
            return root / name
    return root


def _require_dirs(dataset: str, *dirs: Path) -> None:
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        raise SourceLayoutError(f"{dataset}: layout not recognised, expected the folder(s) "
                                f"{', '.join(str(d) for d in missing)}")


def _stem_key(p: Path) -> str:
    return p.stem


# ------------------------------------------------------------------------------ per-dataset pairs


def sidd_pairs(root: Path, split: str, **_: Any) -> list[Pair]:
    data = first_existing([root / "SIDD_Medium_Srgb" / "Data", root / "Data", root], "sidd",
                          "SIDD_Medium_Srgb/Data/<scene>/")
    pairs = []
    for noisy in sorted(data.glob("*/*_NOISY_SRGB_*")):
        if noisy.suffix.lower() in (".png",):
            gt = noisy.with_name(noisy.name.replace("_NOISY_", "_GT_"))
            pairs.append(Pair(noisy, gt, "denoise"))
    return pairs


_RAIN_PREFIX = re.compile(r"^(no)?rain[-_]?", re.IGNORECASE)
RAIN_LAYOUTS = (("rainy", "norain"), ("rain", "norain"), ("input", "target"))


def rain100_pairs(root: Path, split: str, **_: Any) -> list[Pair]:
    folder = _split_folder(root, split, {"train": ("train", "training"), "test": ("test", "testing")})
    for rainy, clean in RAIN_LAYOUTS:
        if (folder / rainy).is_dir() and (folder / clean).is_dir():
            return pair_by_key(folder / rainy, folder / clean, lambda p: _RAIN_PREFIX.sub("", p.stem), "derain")
    expected = " or ".join(f"{folder / a}/ + {folder / b}/" for a, b in RAIN_LAYOUTS)
    raise SourceLayoutError(f"rain100: layout not recognised, expected {expected}")


def gopro_pairs(root: Path, split: str, *, blur_dir: str = "blur", **_: Any) -> list[Pair]:
    base = root / "GOPRO_Large" if (root / "GOPRO_Large").is_dir() else root
    folder = base / split
    _require_dirs("gopro", folder)
    pairs = []
    for seq in sorted(p for p in folder.iterdir() if p.is_dir()):
        _require_dirs("gopro", seq / blur_dir, seq / "sharp")
        pairs.extend(pair_by_key(seq / blur_dir, seq / "sharp", _stem_key, "deblur_motion"))
    return pairs


_LOL_PREFIX = re.compile(r"^(low|normal)", re.IGNORECASE)


def lolv2_pairs(root: Path, split: str, *, subset: str = "Real_captured", **_: Any) -> list[Pair]:
    base = root / subset if (root / subset).is_dir() else root
    folder = base / {"train": "Train", "test": "Test"}.get(split, split)
    _require_dirs("lolv2", folder / "Low", folder / "Normal")
    return pair_by_key(folder / "Low", folder / "Normal", lambda p: _LOL_PREFIX.sub("", p.stem), "lowlight")


def reside_pairs(root: Path, split: str, *, subset: str = "outdoor", **_: Any) -> list[Pair]:
    folder = root / subset if (root / subset).is_dir() else root
    clean = first_existing([folder / "gt", folder / "clear"], "sots", "the clean-image folder")
    _require_dirs("sots", folder / "hazy")
    return pair_by_key(folder / "hazy", clean, lambda p: p.stem.split("_")[0], "dehaze")


def snow100k_pairs(root: Path, split: str, *, size: str = "L", **_: Any) -> list[Pair]:
    if (root / "synthetic").is_dir():
        folder = root
    elif split == "train":
        folder = root / "all"
    else:
        folder = root / split / f"Snow100K-{size}"
    _require_dirs("snow100k", folder / "synthetic", folder / "gt")
    return pair_by_key(folder / "synthetic", folder / "gt", _stem_key, "desnow")


DIV2K_SPLITS = {"train": "train", "val": "valid", "valid": "valid"}


def div2k_pairs(root: Path, split: str, *, scales: Sequence[int] = (2, 4), **_: Any) -> list[Pair]:
    if split not in DIV2K_SPLITS:
        raise ValueError(f"div2k: split must be one of {sorted(DIV2K_SPLITS)}, got {split!r}")
    tag = DIV2K_SPLITS[split]
    hr_dir = root / f"DIV2K_{tag}_HR"
    pairs = []
    for scale in scales:
        if scale not in (2, 4):
            raise ValueError(f"div2k: scales must be 2 and/or 4 (tasks sr_x2, sr_x4), got {scale}")
        lr_dir = root / f"DIV2K_{tag}_LR_bicubic" / f"X{scale}"
        _require_dirs("div2k", hr_dir, lr_dir)
        lr = {p.stem: p for p in list_images(lr_dir)}
        for hr in list_images(hr_dir):
            pairs.append(Pair(lr.get(f"{hr.stem}x{scale}", lr_dir / f"{hr.stem}x{scale}.png"), hr, f"sr_x{scale}",
                              slots={"scale": str(scale)}, upsample_input=True))
    return pairs


# dataset name -> (tasks it yields, pair finder)
PAIRED_DATASETS: dict[str, tuple[tuple[str, ...], Callable[..., list[Pair]]]] = {
    "sidd": (("denoise",), sidd_pairs),
    "rain100l": (("derain",), rain100_pairs),
    "rain100h": (("derain",), rain100_pairs),
    "gopro": (("deblur_motion",), gopro_pairs),
    "lolv2": (("lowlight",), lolv2_pairs),
    "sots": (("dehaze",), reside_pairs),
    "snow100k": (("desnow",), snow100k_pairs),
    "div2k": (("sr_x2", "sr_x4"), div2k_pairs),
}


def load_pair(pair: Pair, root: Path, max_mismatch: int = MAX_MISMATCH_PX) -> Sample:
    """Read one pair as a ``Sample`` (input and target the same size, see module doc)."""
    if pair.target is None:
        raise CorruptSourceError(pair.input, "no clean target image matches this input")
    inp = read_rgb(pair.input)
    tgt = read_rgb(pair.target)
    meta: dict[str, Any] = {"file": relpath(pair.input, root), "target_file": relpath(pair.target, root)}
    if pair.upsample_input:
        meta["input_hw"] = list(inp.shape[:2])
        inp = resize_bicubic(inp, tgt.shape[:2])
    else:
        inp, tgt = align_pair(inp, tgt, pair.input, max_mismatch, meta)
    return Sample(task=pair.task, input=np.ascontiguousarray(inp), truth={"image": np.ascontiguousarray(tgt)},
                  slots=dict(pair.slots), meta=meta)


def build_paired(dataset: str, root: Path | str, split: str = "test", *,
                 max_mismatch: int = MAX_MISMATCH_PX, **options: Any) -> IndexedSource:
    """The paired adapter ``dataset`` (a key of ``PAIRED_DATASETS``); ``options`` go to its finder."""
    tasks, finder = PAIRED_DATASETS[dataset]
    root = require_root(root, dataset)
    pairs = finder(root, split, **options)
    if not pairs:
        raise SourceLayoutError(f"{dataset}: no image pairs found under {root} for split {split!r}")
    tasks = tuple(t for t in tasks if any(p.task == t for p in pairs))
    return IndexedSource(name=dataset, split=split, tasks=tasks, entries=pairs,
                         load=lambda pair, index: load_pair(pair, root, max_mismatch), root=root)


# ---------------------------------------------------------------------------- SIDD validation .mat

SIDD_VAL_FILES = ("ValidationNoisyBlocksSrgb.mat", "ValidationGtBlocksSrgb.mat")


def build_sidd(root: Path | str, split: str = "val", **options: Any) -> IndexedSource:
    """SIDD: ``train`` = SIDD-Medium sRGB PNG pairs, ``val`` = the validation block ``.mat`` files."""
    if split != "val":
        return build_paired("sidd", root, split, **options)
    from scipy.io import loadmat  # only the validation layout needs it

    root = require_root(root, "sidd")
    noisy_path, gt_path = (root / f for f in SIDD_VAL_FILES)
    if not noisy_path.is_file() or not gt_path.is_file():
        raise SourceLayoutError(f"sidd: layout not recognised, expected {noisy_path} and {gt_path}")
    cache: dict[str, np.ndarray] = {}

    def blocks(path: Path) -> np.ndarray:
        if path.name not in cache:
            try:
                mat = loadmat(str(path))
            except (OSError, ValueError, NotImplementedError) as err:
                raise CorruptSourceError(path, f"cannot read .mat ({err})") from err
            key = path.stem
            if key not in mat or mat[key].ndim != 5 or mat[key].dtype != np.uint8:
                raise CorruptSourceError(path, f"expected a uint8 array {key!r} of shape (images, blocks, H, W, 3)")
            cache[path.name] = mat[key]
        return cache[path.name]

    shape = blocks(noisy_path).shape
    if blocks(gt_path).shape != shape:
        raise SourceLayoutError(f"sidd: noisy blocks {shape} and GT blocks {blocks(gt_path).shape} differ")
    entries = [(i, j) for i in range(shape[0]) for j in range(shape[1])]

    def load(entry: tuple[int, int], index: int) -> Sample:
        i, j = entry
        return Sample(task="denoise", input=np.ascontiguousarray(blocks(noisy_path)[i, j]),
                      truth={"image": np.ascontiguousarray(blocks(gt_path)[i, j])},
                      meta={"file": SIDD_VAL_FILES[0], "image": i, "block": j})

    return IndexedSource(name="sidd", split=split, tasks=("denoise",), entries=entries, load=load, root=root)
