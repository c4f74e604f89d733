"""Data recipes: what the builder makes, as typed dataclasses loaded from JSON.

A recipe names the tasks and how many items of each (``mixture``), the square image size, where
the source photos and world textures live, the seed, the shard size, the instruction split and the
world seed range. Everything else about an item is derived from ``(seed, item index)``.

JSON layout (unknown keys and unknown task ids are refused with a clear error)::

    {
      "name": "smoke",
      "size": 64,                      # square side in pixels of every input and target
      "seed": 0,
      "split": "train",                # "train" or "heldout" instruction phrasings
      "items_per_shard": 16,
      "photo_dirs": ["data/photos"],   # relative paths resolve against the working directory
      "texture_dir": null,             # photos used as world textures; null = plain colours
      "world_seeds": [0, 1000000],     # [lo, hi); null = the split's default range
      "mixture": {"stage": "balanced", "per_task": 2},
      "tasks": {"denoise": 1.0, "depth": 1.0, "t2i": 1.0}   # task id -> weight
    }

Mixture stages (see ``pixwizard.data.mixture``):
- ``{"stage": "balanced", "per_task": N}``: stage 1, every listed task exactly N items (weights unused).
- ``{"stage": "weighted", "total": N, "t2i_share": 0.5}``: stage 2, ``t2i`` gets ``t2i_share`` of
  the items (0.5 = 1:1 against the rest), the rest is split in proportion to the task weights.
- ``{"stage": "counts"}``: the task values are exact integer item counts.

World seeds: training recipes draw scene seeds from ``TRAIN_WORLD_SEEDS`` and held-out recipes
from ``HELDOUT_WORLD_SEEDS``; the two ranges are disjoint and a recipe whose range crosses into
the other split's range is refused, so no evaluation scene is ever seen in training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

Split = Literal["train", "heldout"]
Stage = Literal["balanced", "weighted", "counts"]

TRAIN_WORLD_SEEDS: tuple[int, int] = (0, 1_000_000)
HELDOUT_WORLD_SEEDS: tuple[int, int] = (1_000_000_000, 1_001_000_000)
DEFAULT_WORLD_SEEDS: dict[str, tuple[int, int]] = {"train": TRAIN_WORLD_SEEDS, "heldout": HELDOUT_WORLD_SEEDS}
T2I_TASK = "t2i"
PACKAGED_RECIPES = ("default", "smoke")


@dataclass(frozen=True)
class MixtureSpec:
    """How many items of each task (see the module docstring for the stages)."""

    stage: Stage = "balanced"
    per_task: int | None = None  # balanced
    total: int | None = None  # weighted
    t2i_share: float = 0.5  # weighted: fraction of ``total`` given to text-to-image

    def __post_init__(self) -> None:
        if self.stage not in ("balanced", "weighted", "counts"):
            raise ValueError(f"unknown mixture stage {self.stage!r}; choose balanced, weighted or counts")
        if self.stage == "balanced" and (not isinstance(self.per_task, int) or self.per_task < 1):
            raise ValueError(f"balanced mixture needs an integer per_task >= 1, got {self.per_task!r}")
        if self.stage == "weighted":
            if not isinstance(self.total, int) or self.total < 1:
                raise ValueError(f"weighted mixture needs an integer total >= 1, got {self.total!r}")
            if not 0.0 <= self.t2i_share < 1.0:
                raise ValueError(f"t2i_share must be in [0, 1), got {self.t2i_share}")


@dataclass(frozen=True)
class Recipe:
    """A complete, validated description of one dataset build."""

    name: str
    tasks: dict[str, float]  # task id -> weight (or exact count for the "counts" stage)
    mixture: MixtureSpec = field(default_factory=lambda: MixtureSpec(per_task=1))
    size: int = 64
    seed: int = 0
    split: Split = "train"
    items_per_shard: int = 256
    photo_dirs: tuple[str, ...] = ()
    texture_dir: str | None = None
    world_seeds: tuple[int, int] | None = None  # None = DEFAULT_WORLD_SEEDS[split]

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError(f"recipe {self.name!r} lists no tasks")
        if self.split not in DEFAULT_WORLD_SEEDS:
            raise ValueError(f"split must be 'train' or 'heldout', got {self.split!r}")
        if not isinstance(self.size, int) or not 8 <= self.size <= 4096:
            raise ValueError(f"size must be an integer in [8, 4096], got {self.size!r}")
        if not isinstance(self.items_per_shard, int) or self.items_per_shard < 1:
            raise ValueError(f"items_per_shard must be an integer >= 1, got {self.items_per_shard!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for task, value in self.tasks.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"task {task!r}: weight/count must be a number >= 0, got {value!r}")
            if self.mixture.stage == "counts" and int(value) != value:
                raise ValueError(f"task {task!r}: counts must be integers, got {value!r}")
        lo, hi = self.seed_range
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo < hi):
            raise ValueError(f"world_seeds must be [lo, hi) with 0 <= lo < hi, got {self.world_seeds!r}")
        other = "heldout" if self.split == "train" else "train"
        olo, ohi = DEFAULT_WORLD_SEEDS[other]
        if lo < ohi and olo < hi:
            raise ValueError(
                f"world_seeds [{lo}, {hi}) of a {self.split} recipe overlap the {other} range "
                f"[{olo}, {ohi}); train and held-out scenes must stay disjoint")

    @property
    def seed_range(self) -> tuple[int, int]:
        """World scene seeds ``[lo, hi)`` for this recipe's split."""
        return tuple(self.world_seeds) if self.world_seeds is not None else DEFAULT_WORLD_SEEDS[self.split]

    def check_tasks(self, known: Iterable[str]) -> None:
        """Raise ValueError naming every task id the recipe lists that ``known`` lacks."""
        known = set(known)
        unknown = sorted(set(self.tasks) - known)
        if unknown:
            raise ValueError(f"recipe {self.name!r}: unknown task id(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["photo_dirs"] = list(self.photo_dirs)
        d["world_seeds"] = list(self.world_seeds) if self.world_seeds is not None else None
        return d

    def fingerprint(self) -> str:
        """A short hash of everything that determines the output bytes (used to refuse mixing builds)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)


def _check_keys(where: str, d: Mapping[str, Any], cls: type) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")


def recipe_from_dict(d: Mapping[str, Any], *, known_tasks: Iterable[str] | None = None,
                     where: str = "recipe") -> Recipe:
    """Build a Recipe from parsed JSON; ``known_tasks`` (if given) refuses unknown task ids."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
    _check_keys(where, d, Recipe)
    if "name" not in d or "tasks" not in d:
        raise ValueError(f"{where}: 'name' and 'tasks' are required")
    kwargs = dict(d)
    mix = kwargs.get("mixture", {"stage": "balanced", "per_task": 1})
    if not isinstance(mix, Mapping):
        raise ValueError(f"{where}: 'mixture' must be an object")
    _check_keys(f"{where}: mixture", mix, MixtureSpec)
    kwargs["mixture"] = MixtureSpec(**mix)
    tasks = kwargs["tasks"]
    if not isinstance(tasks, Mapping):
        raise ValueError(f"{where}: 'tasks' must be an object mapping task id -> weight")
    kwargs["tasks"] = dict(tasks)
    dirs = kwargs.get("photo_dirs", ())
    if isinstance(dirs, str) or not isinstance(dirs, (list, tuple)):
        raise ValueError(f"{where}: 'photo_dirs' must be a list of folders")
    kwargs["photo_dirs"] = tuple(str(p) for p in dirs)
    if kwargs.get("world_seeds") is not None:
        ws = kwargs["world_seeds"]
        if not isinstance(ws, (list, tuple)) or len(ws) != 2:
            raise ValueError(f"{where}: 'world_seeds' must be [lo, hi] or null")
        kwargs["world_seeds"] = (ws[0], ws[1])
    recipe = Recipe(**kwargs)
    if known_tasks is not None:
        recipe.check_tasks(known_tasks)
    return recipe


def load_recipe(path_or_name: str | Path, *, known_tasks: Iterable[str] | None = None) -> Recipe:
    """Load a recipe from a JSON file, or a packaged one by name (``default``, ``smoke``)."""
    text: str
    p = Path(path_or_name)
    if p.is_file():
        text = p.read_text()
    elif str(path_or_name) in PACKAGED_RECIPES:
        text = resources.files("pixwizard").joinpath("configs", f"{path_or_name}.json").read_text()
    else:
        raise FileNotFoundError(f"recipe {str(path_or_name)!r} is neither a file nor a packaged recipe "
                                f"({', '.join(PACKAGED_RECIPES)})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"recipe {path_or_name}: invalid JSON: {e}") from None
    return recipe_from_dict(data, known_tasks=known_tasks, where=f"recipe {path_or_name}")
