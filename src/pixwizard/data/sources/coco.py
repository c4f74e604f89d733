"""MS-COCO adapters: captions -> t2i, instances -> semseg or category grounding, panoptic -> semseg.

Expected native layout (as unpacked from cocodataset.org; ``{split}`` is ``train`` or ``val``,
``{year}`` is ``2017`` by default or ``2014``)::

    root/
      {split}{year}/000000000139.jpg                 images (file_name in the JSON)
      annotations/captions_{split}{year}.json        {"images": [{id, file_name, height, width}],
                                                      "annotations": [{id, image_id, caption}]}
      annotations/instances_{split}{year}.json       "annotations": [{id, image_id, category_id,
                                                      segmentation (polygons | RLE), bbox xywh,
                                                      area, iscrowd}], "categories": [{id, name}]
      annotations/panoptic_{split}{year}.json        "annotations": [{image_id, file_name,
                                                      segments_info: [{id, category_id, ...}]}]
      annotations/panoptic_{split}{year}/000000000139.png   segment id = R + 256 G + 256^2 B

Label ids: COCO category ids are sparse; ``labels`` use contiguous ids ``1..N`` in ascending
category-id order with 0 = background / unlabelled, and ``meta["classes"][k]`` names id ``k``.
Instance masks are painted largest first so smaller objects stay visible on top.

t2i: the input is a blank canvas (white or black, drawn per item) of the photo's size, the target
is the photo, ``slots["caption"]`` the caption; one sample per caption annotation.
Grounding from instances: one sample per (image, category present, task); the phrase is the
category name, the mask the union of that category's instances, ``boxes`` every instance box.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, first_existing,
                                         item_rng, read_rgb, read_raw, relpath, require_root)
from pixwizard.data.sources.coco_masks import segmentation_to_mask, xywh_to_xyxy
from pixwizard.data.sources.grounding import check_grounding_tasks, grounding_sample


def load_json(path: Path, dataset: str) -> Any:
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise SourceLayoutError(f"{dataset}: {path} is not valid JSON ({err})") from err


def _coco_paths(root: Path, split: str, year: str, kind: str, dataset: str) -> tuple[Path, Path]:
    ann = root / "annotations" / f"{kind}_{split}{year}.json"
    images = root / f"{split}{year}"
    for path in (ann, images):
        if not path.exists():
            raise SourceLayoutError(f"{dataset}: layout not recognised, expected {ann} and the image folder "
                                    f"{images} (COCO {year} layout)")
    return ann, images


def contiguous_classes(categories: list[dict]) -> tuple[dict[int, int], list[str]]:
    """COCO category id -> contiguous label (1..N, ascending id); names with index 0 = background."""
    cats = sorted(categories, key=lambda c: int(c["id"]))
    mapping = {int(c["id"]): i + 1 for i, c in enumerate(cats)}
    return mapping, ["background"] + [str(c["name"]) for c in cats]


def _image_hw(info: dict) -> tuple[int, int]:
    return int(info["height"]), int(info["width"])


def _read_checked(path: Path, info: dict) -> np.ndarray:
    image = read_rgb(path)
    if image.shape[:2] != _image_hw(info):
        raise CorruptSourceError(path, f"image is {image.shape[:2]}, annotations say {_image_hw(info)}")
    return image


def build_coco_captions(root: Path | str, split: str = "val", *, year: str = "2017", seed: int = 0,
                        **_: Any) -> IndexedSource:
    """COCO captions -> ``t2i`` samples (one per caption)."""
    name = "coco_captions"
    root = require_root(root, name)
    ann_path, image_dir = _coco_paths(root, split, year, "captions", name)
    data = load_json(ann_path, name)
    images = {int(im["id"]): im for im in data["images"]}
    entries = sorted(data["annotations"], key=lambda a: int(a["id"]))

    def load(ann: dict, index: int) -> Sample:
        info = images[int(ann["image_id"])]
        path = image_dir / info["file_name"]
        photo = _read_checked(path, info)
        white = bool(item_rng(seed, index).integers(2))
        canvas = np.full_like(photo, 255 if white else 0)
        return Sample(task="t2i", input=canvas, truth={"image": photo}, slots={"caption": ann["caption"].strip()},
                      meta={"image_id": int(info["id"]), "caption_id": int(ann["id"]), "file": relpath(path, root),
                            "canvas": "white" if white else "black"})

    return IndexedSource(name=name, split=split, tasks=("t2i",), entries=entries, load=load, root=root)


@dataclass(frozen=True)
class _GroundingEntry:
    image_id: int
    category_id: int
    task: str


def build_coco_instances(root: Path | str, split: str = "val", *, year: str = "2017",
                         tasks: Sequence[str] = ("semseg",), seed: int = 0,
                         colours: Sequence[str] | None = None, include_crowd: bool = True,
                         **_: Any) -> IndexedSource:
    """COCO instances -> ``semseg`` (one per image) and/or category grounding samples.

    ``tasks`` may hold ``semseg`` and any of ``refseg_mask``, ``refseg_overlay``, ``refbox``.
    ``include_crowd``: crowd regions count in semseg labels and grounding masks (their boxes too).
    """
    name = "coco_instances"
    root = require_root(root, name)
    ann_path, image_dir = _coco_paths(root, split, year, "instances", name)
    data = load_json(ann_path, name)
    images = {int(im["id"]): im for im in data["images"]}
    mapping, classes = contiguous_classes(data["categories"])
    by_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in data["annotations"]:
        if include_crowd or not ann.get("iscrowd", 0):
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
    tasks = tuple(tasks)
    grounding = tuple(t for t in tasks if t != "semseg")
    if grounding:
        check_grounding_tasks(grounding, name)
    entries: list[Any] = []
    for image_id in sorted(images):
        if "semseg" in tasks:
            entries.append(image_id)
        for cat in sorted({int(a["category_id"]) for a in by_image[image_id]}):
            entries.extend(_GroundingEntry(image_id, cat, t) for t in grounding)

    def load(entry: Any, index: int) -> Sample:
        image_id = entry if isinstance(entry, int) else entry.image_id
        info = images[image_id]
        path = image_dir / info["file_name"]
        image = _read_checked(path, info)
        hw = _image_hw(info)
        meta: dict[str, Any] = {"image_id": image_id, "file": relpath(path, root)}
        try:
            if isinstance(entry, int):
                labels = np.zeros(hw, dtype=np.int32)
                for ann in sorted(by_image[image_id], key=lambda a: -float(a.get("area", 0.0))):
                    labels[segmentation_to_mask(ann["segmentation"], hw)] = mapping[int(ann["category_id"])]
                return Sample(task="semseg", input=image, truth={"labels": labels}, meta={**meta, "classes": classes})
            anns = [a for a in by_image[image_id] if int(a["category_id"]) == entry.category_id]
            mask = np.zeros(hw, dtype=bool)
            for ann in anns:
                mask |= segmentation_to_mask(ann["segmentation"], hw)
        except ValueError as err:
            raise CorruptSourceError(ann_path, f"image {image_id}: {err}") from err
        boxes = [xywh_to_xyxy(a["bbox"]) for a in anns]
        meta.update(category_id=entry.category_id, n_instances=len(anns))
        return grounding_sample(entry.task, image, mask, boxes, classes[mapping[entry.category_id]],
                                item_rng(seed, index), meta, colours)

    all_tasks = (("semseg",) if "semseg" in tasks else ()) + grounding
    return IndexedSource(name=name, split=split, tasks=all_tasks, entries=entries, load=load, root=root)


def build_coco_panoptic(root: Path | str, split: str = "val", *, year: str = "2017", **_: Any) -> IndexedSource:
    """COCO panoptic -> ``semseg`` over the 133 thing+stuff categories (one per image)."""
    name = "coco_panoptic"
    root = require_root(root, name)
    ann_path, image_dir = _coco_paths(root, split, year, "panoptic", name)
    png_dir = first_existing([root / "annotations" / f"panoptic_{split}{year}"], name, "the panoptic PNG folder")
    data = load_json(ann_path, name)
    images = {int(im["id"]): im for im in data["images"]}
    mapping, classes = contiguous_classes(data["categories"])
    entries = sorted(data["annotations"], key=lambda a: int(a["image_id"]))

    def load(ann: dict, index: int) -> Sample:
        info = images[int(ann["image_id"])]
        path = image_dir / info["file_name"]
        image = _read_checked(path, info)
        png_path = png_dir / ann["file_name"]
        rgb = read_raw(png_path)
        if rgb.ndim != 3 or rgb.shape[:2] != image.shape[:2]:
            raise CorruptSourceError(png_path, f"panoptic PNG is {rgb.shape}, expected {image.shape[:2]}x3")
        rgb = rgb[..., :3].astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        lut_ids = np.array([0] + [int(s["id"]) for s in ann["segments_info"]], dtype=np.int64)
        lut_labels = np.array([0] + [mapping[int(s["category_id"])] for s in ann["segments_info"]], dtype=np.int32)
        order = np.argsort(lut_ids)
        pos = np.searchsorted(lut_ids[order], ids).clip(0, len(lut_ids) - 1)
        known = lut_ids[order][pos] == ids
        labels = np.where(known, lut_labels[order][pos], 0).astype(np.int32)
        return Sample(task="semseg", input=image, truth={"labels": labels},
                      meta={"image_id": int(info["id"]), "file": relpath(path, root), "classes": classes})

    return IndexedSource(name=name, split=split, tasks=("semseg",), entries=entries, load=load, root=root)
