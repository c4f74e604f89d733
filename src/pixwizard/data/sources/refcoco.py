"""RefCOCO / RefCOCO+ / RefCOCOg / gRefCOCO adapters -> refseg_mask, refseg_overlay, refbox.

Expected native layout (the ``lichengunc/refer`` data folder; gRefCOCO as released with ReLA)::

    data/
      images/mscoco/images/train2014/COCO_train2014_000000581857.jpg   (or data/images/train2014/)
      refcoco/   instances.json  refs(unc).p  refs(google).p            <- root for "refcoco"
      refcoco+/  instances.json  refs(unc).p                           <- root for "refcoco+"
      refcocog/  instances.json  refs(umd).p  refs(google).p           <- root for "refcocog"
      grefcoco/  instances.json  grefs(unc).json                       <- root for "grefcoco"

``root`` is the dataset folder (``data/refcoco``); the train2014 image folder is looked up at
``root/train2014``, ``root/images/train2014``, ``root/../images/mscoco/images/train2014`` and
``root/../images/train2014`` unless given as ``images=``.

A ref is ``{ref_id, image_id, ann_id, split, sentences: [{sent, raw, sent_id, tokens}], ...}``;
``split`` is ``train``/``val``/``testA``/``testB`` (unc), ``train``/``val``/``test`` (umd).
gRefCOCO refs carry ``ann_id`` as a list (``[-1]`` with ``no_target: true`` when the sentence
refers to nothing: the mask is empty and ``boxes`` has zero rows). ``instances.json`` is COCO
format; masks come from its polygons or RLE (``coco_masks``).

One sample per (ref, sentence, task), ``slots["object"]`` = the sentence (``sent``, lower-case
tokenised as released). The refs pickle is read with an unpickler that refuses every class, so a
tampered pickle cannot run code (the real files hold only dicts, lists, strings and numbers).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, first_existing,
                                         item_rng, read_rgb, relpath, require_root)
from pixwizard.data.sources.coco import load_json
from pixwizard.data.sources.coco_masks import segmentation_to_mask, xywh_to_xyxy
from pixwizard.data.sources.grounding import GROUNDING_TASKS, check_grounding_tasks, grounding_sample

# dataset name -> (default refs file, splitBy choices)
REFS_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "refcoco": ("refs({}).p", ("unc", "google")),
    "refcoco+": ("refs({}).p", ("unc",)),
    "refcocog": ("refs({}).p", ("umd", "google")),
    "grefcoco": ("grefs({}).json", ("unc",)),
}


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refs pickle refers to {module}.{name}; only plain data is allowed")


def load_refs_pickle(path: Path) -> list[dict]:
    """A ``refs(*).p`` file (written by Python 2 or 3) as a list of dicts with ``str`` text."""
    try:
        refs = _DataOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise SourceLayoutError(f"cannot read refs pickle {path}: {err}") from err
    if not isinstance(refs, list):
        raise SourceLayoutError(f"refs pickle {path} holds a {type(refs).__name__}, expected a list of refs")
    return refs


@dataclass(frozen=True)
class _RefEntry:
    ref: int  # index into the refs list
    sentence: int
    task: str


def _ann_ids(ref: dict) -> list[int]:
    ids = ref["ann_id"]
    ids = ids if isinstance(ids, list) else [ids]
    return [int(i) for i in ids if int(i) >= 0]


def build_refcoco(root: Path | str, split: str = "val", *, dataset: str = "refcoco", split_by: str | None = None,
                  images: Path | str | None = None, tasks: Sequence[str] = GROUNDING_TASKS, seed: int = 0,
                  colours: Sequence[str] | None = None, **_: Any) -> IndexedSource:
    """A RefCOCO-family dataset; ``dataset`` is one of ``REFS_FILES``, ``split_by`` picks the
    refs file (default: the first choice listed there)."""
    if dataset not in REFS_FILES:
        raise ValueError(f"unknown RefCOCO-family dataset {dataset!r}; choose from {sorted(REFS_FILES)}")
    pattern, choices = REFS_FILES[dataset]
    split_by = split_by or choices[0]
    if split_by not in choices:
        raise ValueError(f"{dataset}: split_by must be one of {choices}, got {split_by!r}")
    tasks = check_grounding_tasks(tasks, dataset)
    root = require_root(root, dataset)
    refs_path = root / pattern.format(split_by)
    inst_path = root / "instances.json"
    if not refs_path.is_file() or not inst_path.is_file():
        raise SourceLayoutError(f"{dataset}: layout not recognised, expected {refs_path} and {inst_path}")
    image_dir = Path(images) if images is not None else first_existing(
        [root / "train2014", root / "images" / "train2014", root.parent / "images" / "mscoco" / "images" / "train2014",
         root.parent / "images" / "train2014"], dataset, "the COCO train2014 image folder")
    if not image_dir.is_dir():
        raise SourceLayoutError(f"{dataset}: image folder {image_dir} does not exist")

    refs = load_refs_pickle(refs_path) if refs_path.suffix == ".p" else load_json(refs_path, dataset)
    inst = load_json(inst_path, dataset)
    image_info = {int(im["id"]): im for im in inst["images"]}
    anns = {int(a["id"]): a for a in inst["annotations"]}
    kept = [r for r in refs if r.get("split") == split]
    if not kept:
        found = sorted({str(r.get("split")) for r in refs})
        raise ValueError(f"{dataset} ({split_by}): no refs in split {split!r}; splits present: {found}")
    kept.sort(key=lambda r: int(r["ref_id"]))
    entries = [_RefEntry(i, s, t) for i, r in enumerate(kept) for s in range(len(r["sentences"])) for t in tasks]

    def load(entry: _RefEntry, index: int) -> Sample:
        ref = kept[entry.ref]
        info = image_info.get(int(ref["image_id"]))
        if info is None:
            raise CorruptSourceError(inst_path, f"ref {ref['ref_id']}: image {ref['image_id']} not in instances.json")
        path = image_dir / info["file_name"]
        image = read_rgb(path)
        hw = (int(info["height"]), int(info["width"]))
        if image.shape[:2] != hw:
            raise CorruptSourceError(path, f"image is {image.shape[:2]}, annotations say {hw}")
        mask = np.zeros(hw, dtype=bool)
        boxes = []
        for ann_id in _ann_ids(ref):
            ann = anns.get(ann_id)
            if ann is None:
                raise CorruptSourceError(inst_path, f"ref {ref['ref_id']}: annotation {ann_id} not in instances.json")
            try:
                mask |= segmentation_to_mask(ann["segmentation"], hw)
            except ValueError as err:
                raise CorruptSourceError(inst_path, f"annotation {ann_id}: {err}") from err
            boxes.append(xywh_to_xyxy(ann["bbox"]))
        sentence = ref["sentences"][entry.sentence]
        meta = {"ref_id": int(ref["ref_id"]), "image_id": int(ref["image_id"]), "ann_ids": _ann_ids(ref),
                "sent_id": int(sentence.get("sent_id", -1)), "file": relpath(path, root), "split_by": split_by}
        return grounding_sample(entry.task, image, mask, boxes, str(sentence["sent"]).strip(),
                                item_rng(seed, index), meta, colours)

    return IndexedSource(name=dataset, split=split, tasks=tasks, entries=entries, load=load, root=root)
