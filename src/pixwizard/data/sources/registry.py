"""The registry of public-dataset adapters: ``SOURCES[name](root, split=..., **options)``.

Use ``open_source(name, root, split, **options)``: it checks the name, the root folder and the
split, and returns a ``Source`` (indexable, iterable, sized). Options are adapter-specific and
documented in each adapter module (``seed``, ``tasks``, ``colours``, ``subset``, ``scales`` ...);
an option an adapter does not know is refused.
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any, Callable

from pixwizard.data.sources.ade20k import build_ade20k
from pixwizard.data.sources.base import Source, require_root
from pixwizard.data.sources.coco import build_coco_captions, build_coco_instances, build_coco_panoptic
from pixwizard.data.sources.editing import build_instructpix2pix, build_magicbrush
from pixwizard.data.sources.nyu import build_nyuv2
from pixwizard.data.sources.refcoco import build_refcoco
from pixwizard.data.sources.restoration import build_paired, build_sidd

SourceFactory = Callable[..., Source]


def _paired(dataset: str) -> SourceFactory:
    return functools.partial(build_paired, dataset)


def _refer(dataset: str) -> SourceFactory:
    return functools.partial(build_refcoco, dataset=dataset)


# name -> (factory, default split, options the factory understands beyond root/split)
_TABLE: dict[str, tuple[SourceFactory, str, tuple[str, ...]]] = {
    "coco_captions": (build_coco_captions, "val", ("year", "seed")),
    "coco_instances": (build_coco_instances, "val", ("year", "tasks", "seed", "colours", "include_crowd")),
    "coco_panoptic": (build_coco_panoptic, "val", ("year",)),
    "refcoco": (_refer("refcoco"), "val", ("split_by", "images", "tasks", "seed", "colours")),
    "refcoco+": (_refer("refcoco+"), "val", ("split_by", "images", "tasks", "seed", "colours")),
    "refcocog": (_refer("refcocog"), "val", ("split_by", "images", "tasks", "seed", "colours")),
    "grefcoco": (_refer("grefcoco"), "val", ("split_by", "images", "tasks", "seed", "colours")),
    "nyuv2": (build_nyuv2, "test", ("tasks", "split_file")),
    "ade20k": (build_ade20k, "val", ()),
    "sidd": (build_sidd, "val", ("max_mismatch",)),
    "rain100l": (_paired("rain100l"), "test", ("max_mismatch",)),
    "rain100h": (_paired("rain100h"), "test", ("max_mismatch",)),
    "gopro": (_paired("gopro"), "test", ("max_mismatch", "blur_dir")),
    "lolv2": (_paired("lolv2"), "test", ("max_mismatch", "subset")),
    "sots": (_paired("sots"), "test", ("max_mismatch", "subset")),
    "snow100k": (_paired("snow100k"), "test", ("max_mismatch", "size")),
    "div2k": (_paired("div2k"), "val", ("max_mismatch", "scales")),
    "magicbrush": (build_magicbrush, "dev", ("default_task",)),
    "instructpix2pix": (build_instructpix2pix, "train", ("default_task",)),
}

SOURCES: dict[str, SourceFactory] = {name: row[0] for name, row in _TABLE.items()}
DEFAULT_SPLITS: dict[str, str] = {name: row[1] for name, row in _TABLE.items()}


def source_names() -> tuple[str, ...]:
    return tuple(SOURCES)


def open_source(name: str, root: Path | str, split: str | None = None, **options: Any) -> Source:
    """Build the adapter ``name`` over the dataset at ``root``.

    ``split`` defaults to the dataset's evaluation split (``DEFAULT_SPLITS``). Raises ValueError
    for an unknown name or option, ``SourceLayoutError`` (a FileNotFoundError) for a missing root
    or unrecognised layout (the message names the files expected).
    """
    if name not in _TABLE:
        close = difflib.get_close_matches(name, list(_TABLE), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown dataset source {name!r}{hint}; known: {', '.join(_TABLE)}")
    factory, default_split, allowed = _TABLE[name]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; this source accepts {list(allowed) or 'none'}")
    require_root(root, name)
    return factory(Path(root), split or default_split, **options)


__all__ = ["SOURCES", "DEFAULT_SPLITS", "SourceFactory", "open_source", "source_names"]
