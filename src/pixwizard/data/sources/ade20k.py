"""ADE20K (SceneParsing / ADEChallengeData2016) adapter -> semseg over 150 classes.

Expected native layout (the MIT Scene Parsing release)::

    root/                                     (ADEChallengeData2016, or its parent)
      images/training/ADE_train_00000001.jpg
      images/validation/ADE_val_00000001.jpg
      annotations/training/ADE_train_00000001.png      8-bit, value k in 1..150 = class k, 0 = other
      annotations/validation/ADE_val_00000001.png
      objectInfo150.txt (optional)                     "Idx Ratio Train Val Name" (tab-separated)

``split`` is ``train``/``training`` or ``val``/``validation``. Labels keep the release ids:
0 = "other" (ignored by the benchmark), 1..150 the classes; ``meta["classes"][k]`` names id k,
read from ``objectInfo150.txt`` when present (first name of each ";"-separated list), else the
standard short names below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, list_images,
                                         read_raw, read_rgb, relpath, require_root)

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)
SPLITS = {"train": "training", "training": "training", "val": "validation", "validation": "validation"}


def read_object_info(path: Path) -> list[str]:
    """Class names 1..150 from ``objectInfo150.txt`` (header line, then Idx/Ratio/Train/Val/Name)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 5:
            names.append(parts[4].split(";")[0].strip())
    if len(names) != 150:
        raise SourceLayoutError(f"ade20k: {path} lists {len(names)} classes, expected 150")
    return names


def build_ade20k(root: Path | str, split: str = "val", **_: Any) -> IndexedSource:
    name = "ade20k"
    root = require_root(root, name)
    if split not in SPLITS:
        raise ValueError(f"{name}: split must be one of {sorted(SPLITS)}, got {split!r}")
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    image_dir = root / "images" / SPLITS[split]
    ann_dir = root / "annotations" / SPLITS[split]
    if not image_dir.is_dir() or not ann_dir.is_dir():
        raise SourceLayoutError(f"{name}: layout not recognised, expected {image_dir}/*.jpg and {ann_dir}/*.png")
    info = root / "objectInfo150.txt"
    classes = ["other"] + (read_object_info(info) if info.is_file() else list(ADE20K_CLASSES))
    entries = list_images(image_dir)

    def load(path: Path, index: int) -> Sample:
        image = read_rgb(path)
        ann_path = ann_dir / (path.stem + ".png")
        labels = read_raw(ann_path)
        if labels.ndim != 2 or labels.shape != image.shape[:2]:
            raise CorruptSourceError(ann_path, f"annotation is {labels.shape}, expected {image.shape[:2]}")
        if labels.max() > 150:
            raise CorruptSourceError(ann_path, f"label {int(labels.max())} outside 0..150")
        return Sample(task="semseg", input=image, truth={"labels": labels.astype(np.int32)},
                      meta={"file": relpath(path, root), "classes": classes, "ignore_label": 0})

    return IndexedSource(name=name, split=split, tasks=("semseg",), entries=entries, load=load, root=root)
