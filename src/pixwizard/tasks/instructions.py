"""The instruction bank: hand-written phrasings per task, split into train and held-out wordings.

The phrasings live in ``tasks/instructions_*.json`` (shipped as package data), one JSON object
per file mapping a bank key (``TaskSpec.bank_key``, the task id) to a list of templates. Templates
use ``str.format`` slots from ``pixwizard.data.sample.SLOT_NAMES``.

Slot value conventions (what generators put in ``Sample.slots``):
- ``object`` / ``new_object`` / ``background``: noun phrases *with* their article,
  e.g. "the small red cube left of the blue sphere", "a green cone", "a snowy forest";
- ``colour``: a bare name from ``pixwizard.tasks.colours`` ("red");
- ``material``: a noun phrase without article ("polished wood");
- ``direction``: an adverbial phrase ("to the left", "closer to the camera");
- ``caption``: a description without final full stop ("a red cube next to a blue sphere on grass").

Split: for each task the phrasings are permuted by a generator seeded with
``SPLIT_SEED + crc32(task id)`` and every 5th phrasing of that order is held out (20%). The split
is a pure function of the bank's contents: stable across runs and machines.
"""

from __future__ import annotations

import json
import string
import zlib
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np

from pixwizard.data.sample import SLOT_NAMES
from pixwizard.tasks.registry import CUSTOM_PHRASINGS, REGISTRY, get_task

Split = Literal["train", "heldout", "all"]

MIN_PHRASINGS = 40
HELDOUT_EVERY = 5
SPLIT_SEED = 20240923

# Generic slot values: "train" fills the training phrasings (router bank, examples); "heldout"
# fills the held-out phrasings when routing accuracy is measured, so it is measured on unseen
# wording *and* unseen slot values (new objects, colours, captions; their words may overlap the
# train values, as a user's would: the world has a fixed set of shapes and colours).
FILLERS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "object": ("the red cube", "the small blue sphere", "the tall green cylinder", "the yellow cone on the left",
                   "the large purple box", "the orange ball next to the cube", "the white torus",
                   "the grey capsule behind the box", "the pink pyramid", "the brown block on the right",
                   "the cyan ring near the wall", "the black cylinder in front"),
        "colour": ("red", "blue", "green", "yellow", "orange", "purple", "white", "grey", "pink", "brown",
                   "black", "cyan"),
        "caption": ("a red cube next to a blue sphere on a wooden floor", "three small spheres on a grassy field",
                    "a green cylinder in front of a brick wall", "a yellow cone and a white box on a tiled floor",
                    "two grey boxes stacked on a concrete floor", "a pink torus lying on a sandy beach",
                    "a black capsule and an orange pyramid under warm light",
                    "a brown block beside a cyan ball on a carpet"),
        "new_object": ("a green cone", "a small yellow sphere", "a blue box", "a red cylinder", "a white torus",
                       "a large pink capsule", "a brown pyramid", "a grey cube"),
        "direction": ("to the left", "to the right", "closer to the camera", "further back", "up a little",
                      "down and to the left", "towards the centre", "next to the wall"),
        "background": ("a sunny beach", "a snowy forest", "a brick wall", "a city street at night",
                       "a grassy meadow", "a white studio backdrop", "a mountain lake", "an office interior"),
        "material": ("wood", "shiny metal", "marble", "glass", "plastic", "brushed steel", "clay", "fabric"),
        "scale": ("2x", "4x"),
        "style": ("watercolour", "oil painting"),
    },
    "heldout": {
        "object": ("the pink torus", "the big brown capsule behind the sphere", "the cyan pyramid",
                   "the white cube on the right", "the grey sphere near the wall", "the magenta box in the middle"),
        "colour": ("cyan", "magenta", "pink", "white", "brown", "green"),
        "caption": ("two cylinders and a cone on sand", "a purple sphere resting on a marble floor in soft light",
                    "a stack of boxes beside a blue ball", "a lone orange capsule on a checkered carpet"),
        "new_object": ("a pink torus", "a white capsule", "a large grey cube", "an orange pyramid"),
        "direction": ("upwards", "slightly to the left", "towards the back wall", "to the front right"),
        "background": ("a desert at sunset", "a wooden cabin interior", "green hills under a blue sky",
                       "a concrete parking lot"),
        "material": ("rusty iron", "rubber", "gold", "rough stone"),
        "scale": ("two times", "four times"),
        "style": ("pencil sketch", "cartoon"),
    },
}


def template_slots(template: str) -> set[str]:
    """Slot names a template uses, e.g. ``{"object", "colour"}``."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


@lru_cache(maxsize=1)
def load_bank() -> dict[str, tuple[str, ...]]:
    """All phrasings, bank key -> templates, read from the packaged JSON files and validated."""
    bank: dict[str, tuple[str, ...]] = {}
    files = sorted(p for p in resources.files("pixwizard.tasks").iterdir()
                   if p.name.startswith("instructions_") and p.name.endswith(".json"))
    if not files:
        raise FileNotFoundError("no instruction bank files (pixwizard/tasks/instructions_*.json) found")
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        for key, templates in data.items():
            if key in bank:
                raise ValueError(f"instruction bank key {key!r} appears in more than one file ({path.name})")
            bank[key] = tuple(templates)
    check_bank(bank)
    return bank


def check_bank(bank: dict[str, tuple[str, ...]]) -> None:
    """Validate the bank against the registry; raise ValueError listing every problem.

    Checks: every task has >= MIN_PHRASINGS distinct phrasings; every template uses all of its
    task's required slots and no slot outside the task's slots; no bank key without a task.
    """
    problems: list[str] = []
    keys = {spec.bank_key for spec in REGISTRY.values()}
    problems += [f"bank key {k!r} belongs to no task" for k in sorted(set(bank) - keys)]
    for spec in REGISTRY.values():
        if spec.id in CUSTOM_PHRASINGS:  # registered at run time with their own phrasings
            continue
        templates = bank.get(spec.bank_key)
        if templates is None:
            problems.append(f"task {spec.id!r} has no phrasings (bank key {spec.bank_key!r})")
            continue
        distinct = {t.strip().lower() for t in templates}
        if len(distinct) < MIN_PHRASINGS:
            problems.append(f"task {spec.id!r} has {len(distinct)} distinct phrasings, needs {MIN_PHRASINGS}")
        if len(distinct) != len(templates):
            problems.append(f"task {spec.id!r} has duplicate phrasings")
        for t in templates:
            used = template_slots(t)
            extra = used - set(spec.all_slots)
            missing = set(spec.slots) - used
            if extra:
                problems.append(f"task {spec.id!r}: {t!r} uses slot(s) {sorted(extra)} not in {spec.all_slots}")
            if missing:
                problems.append(f"task {spec.id!r}: {t!r} lacks required slot(s) {sorted(missing)}")
    if problems:
        raise ValueError("instruction bank problems:\n  " + "\n  ".join(problems))


def _heldout_mask(task_id: str, n: int) -> np.ndarray:
    order = np.random.default_rng(SPLIT_SEED + zlib.crc32(task_id.encode())).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[HELDOUT_EVERY - 1::HELDOUT_EVERY]] = True
    return mask


def phrasings(task_id: str, split: Split = "train") -> list[str]:
    """The templates of ``task_id`` in ``split`` ("train", "heldout" or "all"), in bank order."""
    spec = get_task(task_id)
    templates = CUSTOM_PHRASINGS.get(spec.id) or load_bank()[spec.bank_key]
    if split == "all":
        return list(templates)
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    held = _heldout_mask(task_id, len(templates))
    want = split == "heldout"
    return [t for t, h in zip(templates, held) if h == want]


def make_instruction(task_id: str, slots: dict[str, str], rng: np.random.Generator,
                     split: Split = "train") -> str:
    """A random phrasing of ``task_id`` from ``split`` with ``slots`` filled in.

    Required slots (``TaskSpec.slots``) must all be given (ValueError naming the missing ones);
    phrasings that use an optional slot are drawn only when that slot is given. Extra slots are
    ignored. Deterministic given ``rng``.
    """
    spec = get_task(task_id)
    missing = [s for s in spec.slots if not slots.get(s)]
    if missing:
        raise ValueError(f"task {task_id!r} needs slot(s) {missing}; got {sorted(slots)}")
    given = {k for k, v in slots.items() if v}
    candidates = [t for t in phrasings(task_id, split) if template_slots(t) <= given]
    if not candidates:
        raise ValueError(f"task {task_id!r}: no {split} phrasing can be filled from slots {sorted(given)}; "
                         f"give one of the optional slots {list(spec.optional_slots)}")
    template = candidates[int(rng.integers(len(candidates)))]
    return template.format_map({k: slots[k] for k in template_slots(template)})


def fill_with_fillers(template: str, index: int, fillers: Literal["train", "heldout"] = "train") -> str:
    """``template`` filled with generic slot values from ``FILLERS[fillers]``.

    Slot ``s`` takes value ``(index + SLOT_NAMES.index(s)) mod len`` of its filler list, so that
    consecutive indices vary every slot and slots do not move in lockstep.
    """
    if fillers not in FILLERS:
        raise ValueError(f"fillers must be one of {sorted(FILLERS)}, got {fillers!r}")
    table = FILLERS[fillers]
    values = {}
    for name in template_slots(template):
        options = table[name]
        values[name] = options[(index + SLOT_NAMES.index(name)) % len(options)]
    return template.format_map(values)
