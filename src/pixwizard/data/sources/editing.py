"""Instruction-editing datasets: MagicBrush and InstructPix2Pix -> edit_* / style_* samples.

Both datasets come with their own free-form instruction: it is stored in ``meta["instruction"]``
(the builder uses it instead of a bank phrasing) and ``slots`` stay empty. The canonical task id
is inferred from the instruction by the ordered keyword table ``EDIT_TASK_RULES`` (first match
wins; no match -> ``default_task``); ``meta["task_rule"]`` records which rule fired.

MagicBrush, expected layout (the release zips, one per split)::

    root/                                   (or root/{train,dev,test}/)
      edit_sessions.json    {"<img_id>": [{"input": "<img_id>-input.png", "mask": "<img_id>-mask1.png",
                                           "output": "<img_id>-output1.png", "instruction": "..."}, ...]}
      images/<img_id>/<img_id>-input.png, <img_id>-mask1.png, <img_id>-output1.png, ...

One sample per turn (later turns start from the previous output, as listed). ``truth["mask"]`` is
the brushed region: where the mask PNG is transparent (alpha < 128) when it has an alpha
channel that is not fully opaque, else where it is bright (grey > 127).

InstructPix2Pix, expected layout (``clip-filtered-dataset`` / ``random-sample-dataset``)::

    root/seeds.json                      [["<prompt_dir>", [seed, ...]], ...]   (optional)
    root/<prompt_dir>/prompt.json        {"input": caption, "edit": instruction, "output": caption}
    root/<prompt_dir>/<seed>_0.jpg       input image;  <seed>_1.jpg  edited image

With ``seeds.json`` the splits follow the reference loader (first 90% of prompts = ``train``, next
5% ``val``, last 5% ``test``; ``all`` = everything); without it every ``<seed>_0.jpg`` that has
a ``<seed>_1.jpg`` is used for any split.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixwizard.data.sample import Sample
from pixwizard.data.sources.base import (CorruptSourceError, IndexedSource, SourceLayoutError, align_pair,
                                         centre_crop, read_raw, read_rgb, relpath, require_root)
from pixwizard.data.sources.coco import load_json
from pixwizard.tasks.colours import colour_names

_COLOURS = "|".join(sorted(set(colour_names()) | {"gray", "gold", "silver"}))
EDIT_TASK_RULES: tuple[tuple[str, str], ...] = (
    ("style_watercolor", r"\bwater ?colou?r"),
    ("style_oil", r"\boil[- ]paint"),
    ("style_sketch", r"\b(pencil )?sketch|\bline ?art\b|\bpencil drawing\b"),
    ("style_cartoon", r"\bcartoon|\banime\b|\bcomic\b"),
    ("edit_background", r"\bbackground\b|\bbackdrop\b"),
    ("edit_remove", r"\b(remove|delete|erase|take (away|out)|get rid of|without)\b"),
    ("edit_move", r"\b(move|shift|relocate)\b"),
    ("edit_add", r"\b(add|put|place|insert|include)\b"),
    ("edit_recolor", rf"\b(colou?r|paint|{_COLOURS})\b"),
    ("edit_replace", r"\b(replace|change|turn|swap|make|transform|into|instead|become)\b"),
)
_COMPILED = tuple((task, re.compile(pattern, re.IGNORECASE)) for task, pattern in EDIT_TASK_RULES)


def classify_edit(instruction: str, default_task: str = "edit_replace") -> tuple[str, str]:
    """``(task id, rule)`` for a free-form edit instruction; rule is the matching task or ``"default"``."""
    for task, pattern in _COMPILED:
        if pattern.search(instruction):
            return task, task
    return default_task, "default"


def edit_tasks() -> tuple[str, ...]:
    return tuple(dict.fromkeys(task for task, _ in EDIT_TASK_RULES))


def _edit_sample(inp_path: Path, out_path: Path, instruction: str, root: Path, default_task: str,
                 meta: dict[str, Any]) -> tuple[Sample, dict[str, Any]]:
    inp = read_rgb(inp_path)
    out = read_rgb(out_path)
    meta = {**meta, "file": relpath(inp_path, root), "target_file": relpath(out_path, root),
            "instruction": instruction}
    inp, out = align_pair(inp, out, inp_path, 8, meta)
    task, rule = classify_edit(instruction, default_task)
    meta["task_rule"] = rule
    return Sample(task=task, input=np.ascontiguousarray(inp), truth={"image": np.ascontiguousarray(out)},
                  meta=meta), meta


def read_edit_mask(path: Path, size_hw: tuple[int, int]) -> np.ndarray:
    """A MagicBrush mask PNG -> HxW bool brushed region (see module doc), resized nearest if needed."""
    raw = read_raw(path)
    if raw.ndim == 3 and raw.shape[2] == 4 and (raw[..., 3] < 255).any():
        mask = raw[..., 3] < 128
    else:
        grey = raw if raw.ndim == 2 else raw[..., :3].mean(axis=2)
        mask = grey > 127
    if mask.shape != size_hw:
        if abs(mask.shape[0] - size_hw[0]) > 8 or abs(mask.shape[1] - size_hw[1]) > 8:
            raise CorruptSourceError(path, f"mask is {mask.shape}, image is {size_hw}")
        mask = centre_crop(mask, size_hw)
    return mask


@dataclass(frozen=True)
class _Turn:
    img_id: str
    turn: int
    input: str
    output: str
    mask: str | None
    instruction: str


def build_magicbrush(root: Path | str, split: str = "dev", *, default_task: str = "edit_replace",
                     **_: Any) -> IndexedSource:
    name = "magicbrush"
    root = require_root(root, name)
    folder = root / split if (root / split / "edit_sessions.json").is_file() else root
    sessions_path = folder / "edit_sessions.json"
    if not sessions_path.is_file() or not (folder / "images").is_dir():
        raise SourceLayoutError(f"{name}: layout not recognised, expected {root / split}/edit_sessions.json or "
                                f"{root}/edit_sessions.json next to an images/<img_id>/ folder")
    sessions = load_json(sessions_path, name)
    entries = [
        _Turn(str(img_id), k, t["input"], t["output"], t.get("mask"), str(t["instruction"]).strip())
        for img_id in sorted(sessions, key=str) for k, t in enumerate(sessions[img_id])
    ]

    def load(turn: _Turn, index: int) -> Sample:
        d = folder / "images" / turn.img_id
        sample, meta = _edit_sample(d / turn.input, d / turn.output, turn.instruction, root, default_task,
                                    {"img_id": turn.img_id, "turn": turn.turn})
        if turn.mask:
            mask_path = d / turn.mask
            meta["mask_file"] = relpath(mask_path, root)
            sample.truth["mask"] = read_edit_mask(mask_path, sample.input.shape[:2])
        return sample

    return IndexedSource(name=name, split=split, tasks=edit_tasks(), entries=entries, load=load, root=root)


IP2P_SPLITS = {"train": (0.0, 0.9), "val": (0.9, 0.95), "test": (0.95, 1.0), "all": (0.0, 1.0)}


def build_instructpix2pix(root: Path | str, split: str = "train", *, default_task: str = "edit_replace",
                          **_: Any) -> IndexedSource:
    name = "instructpix2pix"
    root = require_root(root, name)
    seeds_path = root / "seeds.json"
    if seeds_path.is_file():
        if split not in IP2P_SPLITS:
            raise ValueError(f"{name}: split must be one of {sorted(IP2P_SPLITS)}, got {split!r}")
        seeds = load_json(seeds_path, name)
        lo, hi = IP2P_SPLITS[split]
        chosen = seeds[math.floor(lo * len(seeds)):math.floor(hi * len(seeds))]
        entries = [(str(prompt), str(seed)) for prompt, seed_list in chosen for seed in seed_list]
    else:
        entries = [(first.parent.name, first.name[:-len("_0.jpg")])
                   for first in sorted(root.glob("*/*_0.jpg"))
                   if (first.parent / "prompt.json").is_file()
                   and first.with_name(first.name[:-6] + "_1.jpg").is_file()]
    if not entries:
        raise SourceLayoutError(f"{name}: layout not recognised, expected {root}/<prompt_dir>/prompt.json with "
                                f"<seed>_0.jpg and <seed>_1.jpg (and optionally {seeds_path})")

    def load(entry: tuple[str, str], index: int) -> Sample:
        prompt_dir, seed = entry
        d = root / prompt_dir
        prompt_path = d / "prompt.json"
        try:
            prompt = json.loads(prompt_path.read_text(encoding="utf-8"))
            instruction = str(prompt["edit"]).strip()
        except (OSError, json.JSONDecodeError, KeyError) as err:
            raise CorruptSourceError(prompt_path, f"cannot read the edit instruction ({err})") from err
        sample, meta = _edit_sample(d / f"{seed}_0.jpg", d / f"{seed}_1.jpg", instruction, root, default_task,
                                    {"prompt_dir": prompt_dir, "seed": seed})
        meta.update(input_caption=prompt.get("input"), output_caption=prompt.get("output"))
        return sample

    return IndexedSource(name=name, split=split, tasks=edit_tasks(), entries=entries, load=load, root=root)
