"""A user's pairs: found in a folder or a JSONL manifest, checked, split, and streamed as batches.

Folder layout: ``NAME_input.EXT`` with ``NAME_target.EXT`` (optional ``NAME_mask.EXT``); the
instruction is ``NAME.txt`` when present (a per-pair caption), else a line of ``instruction.txt``
in the folder (one instruction per line; each sample draws one), else a phrasing of the task.
Manifest: one JSON object per line with ``input``, ``target`` and optionally ``instruction`` and
``mask`` (paths relative to the manifest's folder). Masks are checked (readable, the input's size)
but not used by training yet.

The checker reads every image and reports pairs it cannot read, pairs whose input and target sizes
differ, inputs without a target and duplicate pairs (same input and target bytes; all but the first
are dropped). Training refuses an empty set, and a set with unreadable or mismatched pairs unless
they are skipped explicitly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixwizard.imageio import load_image
from pixwizard.train.data import Batch, random_crop_pair, to_tensor

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
INSTRUCTION_FILE = "instruction.txt"
MAX_PIXELS = 4096 * 4096


@dataclass
class PairRef:
    name: str
    input: Path
    target: Path | None
    instruction: str | None = None
    mask: Path | None = None


@dataclass
class Pair:
    name: str
    input: np.ndarray  # HxWx3 uint8
    target: np.ndarray  # HxWx3 uint8, the input's size
    instruction: str | None = None  # None = a phrasing from the set's or the task's instructions


@dataclass
class CheckReport:
    """What the checker found; ``pairs`` are the usable ones (duplicates dropped)."""

    pairs: list[Pair]
    unreadable: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    missing_target: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    instructions: tuple[str, ...] = ()  # the folder's instruction.txt lines

    @property
    def broken(self) -> list[str]:
        return self.unreadable + self.mismatched + self.missing_target

    def lines(self) -> list[str]:
        out = [f"{len(self.pairs)} usable pair(s)"]
        for label, items in (("unreadable", self.unreadable), ("input and target sizes differ", self.mismatched),
                             ("no target", self.missing_target), ("duplicate (dropped)", self.duplicates)):
            if items:
                shown = "; ".join(items[:5]) + (f"; ... {len(items) - 5} more" if len(items) > 5 else "")
                out.append(f"{len(items)} {label}: {shown}")
        return out

    def require_usable(self, skip_bad: bool = False) -> None:
        """Raise ValueError (one line) on an empty set, or a broken one unless ``skip_bad``."""
        if self.broken and not skip_bad:
            raise ValueError("the pair set has problems (" + " | ".join(self.lines()[1:]) +
                             "): fix them or pass --skip-bad to train on the usable pairs")
        if not self.pairs:
            raise ValueError("no usable pairs: " + " | ".join(self.lines()))


def _image_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS and p.is_file()}


def find_pairs(source: str | Path) -> tuple[list[PairRef], tuple[str, ...]]:
    """Pair references of a folder or a ``.jsonl`` manifest, and the folder's instruction lines."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such folder or manifest: {source}")
    if source.is_file():
        return _manifest_pairs(source), ()
    files = _image_files(source)
    refs = []
    for stem, path in files.items():
        if not stem.endswith("_input"):
            continue
        name = stem[: -len("_input")]
        caption = source / f"{name}.txt"
        text = caption.read_text().strip() if caption.is_file() else None
        refs.append(PairRef(name, path, files.get(f"{name}_target"), text or None, files.get(f"{name}_mask")))
    lines: tuple[str, ...] = ()
    if (source / INSTRUCTION_FILE).is_file():
        lines = tuple(ln.strip() for ln in (source / INSTRUCTION_FILE).read_text().splitlines() if ln.strip())
    return refs, lines


def _manifest_pairs(path: Path) -> list[PairRef]:
    refs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {i} is not JSON: {e}") from None
        if not isinstance(row, dict) or "input" not in row or "target" not in row:
            raise ValueError(f"{path} line {i}: each line needs 'input' and 'target' (and may have "
                             f"'instruction', 'mask')")
        mask = row.get("mask")
        refs.append(PairRef(f"line{i}:{Path(row['input']).stem}", path.parent / row["input"],
                            path.parent / row["target"], (row.get("instruction") or "").strip() or None,
                            path.parent / mask if mask else None))
    return refs


def check_pairs(refs: list[PairRef], instructions: tuple[str, ...] = ()) -> CheckReport:
    """Read every pair and sort it into usable / unreadable / mismatched / no target / duplicate."""
    report = CheckReport(pairs=[], instructions=instructions)
    seen: dict[str, str] = {}
    for ref in refs:
        if ref.target is None or not ref.target.exists():
            report.missing_target.append(ref.name)
            continue
        try:
            a = load_image(ref.input, max_pixels=MAX_PIXELS)
            b = load_image(ref.target, max_pixels=MAX_PIXELS)
        except (ValueError, OSError) as e:
            report.unreadable.append(f"{ref.name} ({e})")
            continue
        if a.shape != b.shape:
            report.mismatched.append(f"{ref.name} ({a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]})")
            continue
        if ref.mask is not None:  # checked like the images (training does not use masks yet)
            try:
                m = load_image(ref.mask, max_pixels=MAX_PIXELS)
            except (ValueError, OSError) as e:
                report.unreadable.append(f"{ref.name} mask ({e})")
                continue
            if m.shape[:2] != a.shape[:2]:
                report.mismatched.append(f"{ref.name} mask ({m.shape[1]}x{m.shape[0]} vs {a.shape[1]}x{a.shape[0]})")
                continue
        digest = hashlib.sha1(a.tobytes() + b"|" + b.tobytes() + repr(a.shape).encode()).hexdigest()
        if digest in seen:
            report.duplicates.append(f"{ref.name} (= {seen[digest]})")
            continue
        seen[digest] = ref.name
        report.pairs.append(Pair(ref.name, a, b, ref.instruction))
    return report


def load_and_check(source: str | Path) -> CheckReport:
    refs, lines = find_pairs(source)
    return check_pairs(refs, lines)


GROUP_SEP = "__"


def split_pairs(pairs: list[Pair], holdout: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out) by a seeded permutation of the pair groups; ``holdout`` is a fraction (< 1,
    at least one pair when there are two or more) or a count of pairs. Pairs whose names share a
    prefix before ``__`` (e.g. two crops of one photo: ``img7__a``, ``img7__b``) form one group and
    stay on one side, so nothing of a held-out source is trained on."""
    groups: dict[str, list[Pair]] = {}
    for p in sorted(pairs, key=lambda p: p.name):
        groups.setdefault(p.name.split(GROUP_SEP)[0], []).append(p)
    keys = sorted(groups)
    n = int(holdout) if holdout >= 1 else int(round(holdout * len(pairs)))
    if holdout > 0 and n == 0 and len(pairs) >= 2:
        n = 1
    held: list[Pair] = []
    chosen = set()
    for i in np.random.default_rng([seed, 7]).permutation(len(keys)).tolist():
        if len(held) >= n:
            break
        held.extend(groups[keys[i]])
        chosen.add(keys[i])
    train = [p for k in keys if k not in chosen for p in groups[k]]
    if not train:
        raise ValueError(f"holdout {holdout} leaves no pair to train on ({len(pairs)} pair(s))")
    return train, sorted(held, key=lambda p: p.name)


def fit_size(img: np.ndarray, size: int) -> np.ndarray:
    """Upscale (aspect kept) so the short side is at least ``size``; larger images are unchanged."""
    h, w = img.shape[:2]
    if min(h, w) >= size:
        return img
    s = size / min(h, w)
    return cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_CUBIC)


class PairStream:
    """Endless, exactly resumable batches of aligned random crops of in-memory pairs.

    Epochs are seeded permutations; instructions without a per-pair caption are drawn from
    ``instructions``. :meth:`state_dict` is the state after the last returned batch."""

    def __init__(self, pairs: list[Pair], batch_size: int, size: int, seed: int, instructions: tuple[str, ...],
                 task: str):
        if not pairs:
            raise ValueError("no pairs to train on")
        if not instructions and any(p.instruction is None for p in pairs):
            raise ValueError("pairs without an instruction need instruction.txt or task phrasings")
        self.pairs = [Pair(p.name, fit_size(p.input, size), fit_size(p.target, size), p.instruction) for p in pairs]
        self.batch_size, self.size, self.task = batch_size, size, task
        self.instructions = tuple(instructions)
        self.rng = np.random.default_rng([seed, 11])
        self.order = self.rng.permutation(len(self.pairs)).tolist()
        self.pos = 0

    def _next_pair(self) -> Pair:
        if self.pos >= len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.pairs)).tolist(), 0
        pair = self.pairs[self.order[self.pos]]
        self.pos += 1
        return pair

    def next_batch(self) -> Batch:
        inputs, targets, texts = [], [], []
        for _ in range(self.batch_size):
            p = self._next_pair()
            a, b = random_crop_pair(p.input, p.target, self.size, self.rng)
            inputs.append(a)
            targets.append(b)
            texts.append(p.instruction or self.instructions[int(self.rng.integers(len(self.instructions)))])
        return Batch(to_tensor(inputs), to_tensor(targets), texts, [self.task] * len(texts))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "order": list(self.order), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order, self.pos = [int(i) for i in state["order"]], int(state["pos"])
