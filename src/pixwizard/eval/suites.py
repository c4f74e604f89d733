"""Evaluation suites: declarative JSON configs and the deterministic items they stand for.

A suite is a ``SuiteConfig`` read from JSON: the built-in ones ship as
``pixwizard/configs/suite_<name>.json`` (``suite_names()``), any other file path works too.
Two kinds:

- ``"generated"``: items made here from seeds. World tasks render scenes with world seeds in
  ``world_seeds`` (default ``[1e9, 1e9 + 1e6)``, disjoint from the training range ``[0, 1e6)``:
  an overlapping range is refused). Photo tasks degrade/edit crops of clean photos: the folders
  given by ``--photos`` or the suite's ``photo_dirs``, or, with ``"photos": "builtin"`` and no
  folder given, ``BUILTIN_PHOTOS`` (images shipped with scikit-image, offline), so the suite always
  runs.
- ``"benchmark"``: items read from a public dataset in its native layout through
  ``pixwizard.data.sources.open_source(source, data_root, source_split, **source_options)``.

Item identity and seeds: the suite's item list is every task (in the suite's order) times
``items_per_task`` (benchmarks: the dataset's items of that task, up to ``items_per_task``);
item ``index`` is its position in that full list, so ``--limit`` never changes another item's
seed. Item ``index`` draws from ``SeedSequence(suite.seed, spawn_key=(index,))`` spawned into
three streams: the content (photo choice, crop, degradation), the instruction phrasing, and the
model's noise seed (``ItemRef.seed``, a 31-bit int). World items use scene seed
``world_seeds[0] + index`` (must stay below ``world_seeds[1]``).

Instructions use the suite's phrasing ``split`` ("heldout" by default: wordings never used in
training). A benchmark sample that carries its own instruction (``meta["instruction"]``, e.g.
MagicBrush) keeps it. Photo tasks whose phrasings need a ``caption`` take it from the photo's
caption (built-in photos have one) or the suite's ``default_caption`` (recorded in the item's
``origin["caption_source"]``).

Degenerate items (``pixwizard.data.degenerate``: the input equals the target) are never scored: a
photo item draws another photo and crop from its content stream (at most ``MAX_DRAWS`` times;
``origin["degenerate_redraws"]`` counts them), and any other generated item whose input equals
its target fails with the reason (``DegenerateItemError``, recorded in the item's error.json).
Benchmark items are scored as the dataset gives them.

Metrics: per task the TaskSpec's list unless the suite's ``metrics`` overrides it;
``metric_options[task][metric]`` are passed to the metric's accumulator (e.g. ``crop`` for
super-resolution PSNR, ``model_path`` for CLIP). Every name must be known (``known_metrics()``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pixwizard.data.degenerate import MAX_DRAWS, DegenerateItemError, is_degenerate
from pixwizard.data.recipe import TRAIN_WORLD_SEEDS
from pixwizard.data.sample import Sample
from pixwizard.tasks.registry import REGISTRY, get_task

SuiteKind = Literal["generated", "benchmark"]
SUITE_PREFIX = "suite_"
DEFAULT_WORLD_SEEDS: tuple[int, int] = (1_000_000_000, 1_001_000_000)

# Images shipped inside scikit-image (no download): loader name -> caption for generation tasks.
BUILTIN_PHOTOS: dict[str, str] = {
    "astronaut": "a portrait of an astronaut in a white spacesuit in front of a flag",
    "coffee": "a cup of coffee on a saucer on a wooden table",
    "chelsea": "a ginger tabby cat looking to the side",
    "rocket": "a rocket standing on a launch pad under a blue sky",
}

_KEYS = {"name", "description", "kind", "tasks", "items_per_task", "size", "seed", "split", "world_seeds",
         "photos", "photo_dirs", "default_caption", "metrics", "metric_options", "source", "source_split",
         "source_options", "protocol", "textures"}


def known_metrics() -> set[str]:
    from pixwizard.eval.metrics import METRICS

    return set(METRICS)


@dataclass(frozen=True)
class SuiteConfig:
    """One evaluation suite (see the module doc for every field's meaning)."""

    name: str
    kind: SuiteKind
    tasks: tuple[str, ...]
    items_per_task: int | None = 8  # None = every item of a benchmark
    size: int | None = None  # generated: square side in pixels (required); benchmarks: None = native size
    seed: int = 0
    split: str = "heldout"
    description: str = ""
    world_seeds: tuple[int, int] = DEFAULT_WORLD_SEEDS
    photos: Literal["dirs", "builtin"] = "dirs"
    photo_dirs: tuple[str, ...] = ()
    textures: str | None = None
    default_caption: str = "a photograph"
    metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metric_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    source: str | None = None
    source_split: str | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    protocol: str | None = None  # key of the paper's protocol this suite follows (pixwizard.eval.paper)

    def __post_init__(self) -> None:
        where = f"suite {self.name!r}"
        if self.kind not in ("generated", "benchmark"):
            raise ValueError(f"{where}: kind must be 'generated' or 'benchmark', got {self.kind!r}")
        if not self.tasks:
            raise ValueError(f"{where}: no tasks")
        for t in self.tasks:
            get_task(t)  # ValueError naming the closest ids
        if self.items_per_task is not None and self.items_per_task < 1:
            raise ValueError(f"{where}: items_per_task must be >= 1 or null, got {self.items_per_task}")
        if self.kind == "generated" and (self.size is None or self.size < 16):
            raise ValueError(f"{where}: a generated suite needs size >= 16, got {self.size}")
        if self.kind == "benchmark" and self.size is not None:
            raise ValueError(f"{where}: benchmarks are scored at their native size; set size to null")
        if self.kind == "generated" and self.items_per_task is None:
            raise ValueError(f"{where}: a generated suite needs items_per_task")
        if self.split not in ("train", "heldout", "all"):
            raise ValueError(f"{where}: split must be 'train', 'heldout' or 'all', got {self.split!r}")
        lo, hi = self.world_seeds
        if not lo < hi:
            raise ValueError(f"{where}: world_seeds must be [lo, hi) with lo < hi, got {[lo, hi]}")
        if lo < TRAIN_WORLD_SEEDS[1] and hi > TRAIN_WORLD_SEEDS[0]:
            raise ValueError(f"{where}: world_seeds {[lo, hi]} overlap the training seeds {list(TRAIN_WORLD_SEEDS)}; "
                             "evaluation scenes must never be seen in training")
        if self.kind == "generated" and self.items_per_task is not None:
            if len(self.tasks) * self.items_per_task > hi - lo:
                raise ValueError(f"{where}: {len(self.tasks) * self.items_per_task} items need more world seeds "
                                 f"than [{lo}, {hi}) holds")
        if self.photos not in ("dirs", "builtin"):
            raise ValueError(f"{where}: photos must be 'dirs' or 'builtin', got {self.photos!r}")
        if self.kind == "benchmark" and not self.source:
            raise ValueError(f"{where}: a benchmark suite needs 'source' (a pixwizard.data.sources name)")
        known = known_metrics()
        for task in [*self.metrics, *self.metric_options]:
            if task not in self.tasks:
                raise ValueError(f"{where}: metrics/metric_options name task {task!r}, which is not in the suite")
        for task, names in self.metrics.items():
            for m in names:
                if m not in known:
                    raise ValueError(f"{where}: unknown metric {m!r} for task {task!r}; known: "
                                     f"{', '.join(sorted(known))}")
        for task, per_metric in self.metric_options.items():
            for m in per_metric:
                if m not in self.task_metrics(task):
                    raise ValueError(f"{where}: metric_options for {task}/{m}, but {m!r} is not one of the "
                                     f"task's metrics {list(self.task_metrics(task))}")
        for t in self.tasks:
            if not self.task_metrics(t):
                raise ValueError(f"{where}: task {t!r} has no metric")

    def task_metrics(self, task: str) -> tuple[str, ...]:
        """The metric names that score ``task`` in this suite (the suite's override or the TaskSpec's)."""
        return tuple(self.metrics.get(task, get_task(task).metrics))

    def options(self, task: str, metric: str) -> dict[str, Any]:
        return dict(self.metric_options.get(task, {}).get(metric, {}))

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_name: str = "suite") -> "SuiteConfig":
        if not isinstance(data, dict):
            raise ValueError(f"a suite config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ValueError(f"suite {data.get('name', default_name)!r}: unknown key(s) {unknown}; "
                             f"allowed: {sorted(_KEYS)}")
        d = dict(data)
        d.setdefault("name", default_name)
        d.setdefault("kind", "generated")
        d["tasks"] = _expand_tasks(d.get("tasks", "all"), d["name"])
        for key in ("world_seeds", "photo_dirs"):
            if key in d:
                d[key] = tuple(d[key])
        d["metrics"] = {t: tuple(ms) for t, ms in d.get("metrics", {}).items()}
        return cls(**d)


MAX_SUITE_SIZE = 2048


def at_size(suite: SuiteConfig, size: int | None) -> SuiteConfig:
    """``suite`` with its generated items made at ``size`` px (``pixwizard eval --size``), renamed
    ``<name>-<size>px`` so its runs never mix with the suite's own size; unchanged for None or the
    suite's size. Benchmarks are scored at their native size: ValueError."""
    if size is None or size == suite.size:
        return suite
    if suite.kind != "generated":
        raise ValueError(f"suite {suite.name!r} is a benchmark, scored at the dataset's native size: drop --size")
    if not 16 <= size <= MAX_SUITE_SIZE:
        raise ValueError(f"--size must be between 16 and {MAX_SUITE_SIZE} pixels, got {size}")
    from dataclasses import replace

    return replace(suite, size=int(size), name=f"{suite.name}-{size}px")


def _expand_tasks(spec: Any, name: str) -> tuple[str, ...]:
    """``"all"``, ``"world"``, ``"photo"`` or an explicit list of task ids."""
    if spec == "all":
        return tuple(REGISTRY)
    if spec in ("world", "photo"):
        return tuple(t for t, s in REGISTRY.items() if s.source == spec)
    if isinstance(spec, list) and all(isinstance(t, str) for t in spec):
        if len(set(spec)) != len(spec):
            raise ValueError(f"suite {name!r}: a task is listed twice in {spec}")
        return tuple(spec)
    raise ValueError(f"suite {name!r}: tasks must be 'all', 'world', 'photo' or a list of task ids, got {spec!r}")


def suite_names() -> tuple[str, ...]:
    """Names of the built-in suites (``pixwizard/configs/suite_<name>.json``)."""
    folder = resources.files("pixwizard") / "configs"
    return tuple(sorted(p.name[len(SUITE_PREFIX):-5] for p in folder.iterdir()
                        if p.name.startswith(SUITE_PREFIX) and p.name.endswith(".json")))


def load_suite(name_or_path: str | Path) -> SuiteConfig:
    """A built-in suite by name, or a suite JSON file by path (ValueError / FileNotFoundError otherwise)."""
    text = str(name_or_path)
    if text in suite_names():
        raw = (resources.files("pixwizard") / "configs" / f"{SUITE_PREFIX}{text}.json").read_text()
        source, default = f"built-in suite {text!r}", text
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"no suite {text!r}: not a built-in suite ({', '.join(suite_names())}) "
                                    "and no such file")
        raw, source, default = path.read_text(), str(path), path.stem
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source} is not valid JSON: {e}") from None
    return SuiteConfig.from_dict(data, default_name=default)


# ----------------------------------------------------------------------------- items


@dataclass(frozen=True)
class ItemRef:
    """One item of a suite, before anything is generated: cheap to list, stable across runs.

    ``key`` = ``"<task>/<k:04d>"`` (k = position within the task) names its folder; ``index`` is its
    position in the suite's full item list; ``seed`` is the model's noise seed for this item.
    """

    index: int
    task: str
    k: int
    seed: int
    source_index: int | None = None  # benchmark: the dataset index

    @property
    def key(self) -> str:
        return f"{self.task}/{self.k:04d}"


@dataclass
class EvalItem:
    """A generated item: the sample (input, typed truth, slots, meta), its target image and instruction."""

    ref: ItemRef
    sample: Sample
    target: np.ndarray  # HxWx3 uint8, the task's codec encoding of the truth
    instruction: str
    origin: dict[str, Any] = field(default_factory=dict)  # where the content came from (photo, world seed ...)


def item_streams(suite_seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, int]:
    """(content rng, instruction rng, model noise seed) of item ``index`` (see the module doc)."""
    content, text, noise = np.random.SeedSequence(suite_seed, spawn_key=(index,)).spawn(3)
    return (np.random.default_rng(content), np.random.default_rng(text),
            int(noise.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF))


def item_refs(suite: SuiteConfig, limit: int | None = None, source_lengths: dict[str, list[int]] | None = None
              ) -> list[ItemRef]:
    """Every item of ``suite`` (at most ``limit`` per task). Benchmarks need ``source_lengths``:
    task -> the dataset indices of that task (``BenchmarkSource.indices_by_task``)."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    refs: list[ItemRef] = []
    index = 0
    for task in suite.tasks:
        if suite.kind == "generated":
            sources: list[int | None] = [None] * int(suite.items_per_task or 0)
        else:
            if source_lengths is None:
                raise ValueError("a benchmark suite needs its dataset's indices to list its items")
            sources = list(source_lengths.get(task, []))
            if suite.items_per_task is not None:
                sources = sources[:suite.items_per_task]
        for k, src in enumerate(sources):
            if limit is None or k < limit:
                refs.append(ItemRef(index, task, k, item_streams(suite.seed, index)[2], src))
            index += 1
    return refs


# ----------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class Photo:
    name: str
    caption: str | None
    path: Path | None = None  # None for built-in images

    def load(self) -> np.ndarray:
        if self.path is None:
            return _builtin_image(self.name)
        from pixwizard.data.photos import load_photo

        return load_photo(self.path)


@lru_cache(maxsize=None)
def _builtin_image(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    img.setflags(write=False)
    return img


def resolve_photos(suite: SuiteConfig, photo_dirs: list[str] | None = None) -> list[Photo]:
    """The clean photos for the suite's photo tasks: ``photo_dirs`` (``--photos``) if given, else the
    suite's ``photo_dirs``, else the built-in set when the suite allows it. Empty when the suite has
    no photo task. FileNotFoundError when photo tasks have no photos. Folder photos whose short side
    is below the suite's size are left out (they would be upscaled into soft targets)."""
    if not any(get_task(t).source == "photo" for t in suite.tasks) or suite.kind == "benchmark":
        return []
    dirs = list(photo_dirs or suite.photo_dirs)
    if dirs:
        from pixwizard.data.photos import MIN_SIDE, list_photos

        min_side = max(MIN_SIDE, int(suite.size or 0))  # never upscale a photo into a (soft) target

        photos: list[Photo] = []
        for d in dirs:
            if not Path(d).is_dir():
                raise FileNotFoundError(f"photo folder {d} does not exist")
            photos += [Photo(p.name, None, Path(p)) for p in list_photos(d, min_side=min_side)]
        if not photos:
            raise FileNotFoundError(f"no usable photos of at least {min_side} px on the short side in "
                                    f"{', '.join(dirs)}")
        return photos
    if suite.photos == "builtin":
        return [Photo(name, caption) for name, caption in BUILTIN_PHOTOS.items()]
    raise FileNotFoundError(f"suite {suite.name!r} has photo tasks but no photos: give --photos DIR (a folder of "
                            "clean images) or set photo_dirs in the suite")


# ----------------------------------------------------------------------------- generation


@dataclass
class ItemFactory:
    """Makes the ``EvalItem`` of an ``ItemRef`` for one suite (photos and dataset resolved once)."""

    suite: SuiteConfig
    photos: list[Photo] = field(default_factory=list)
    benchmark: Any = None  # an opened pixwizard.data.sources Source for benchmark suites
    textures: list[Path] | None = None

    def make(self, ref: ItemRef) -> EvalItem:
        content_rng, text_rng, _ = item_streams(self.suite.seed, ref.index)
        spec = get_task(ref.task)
        if self.suite.kind == "benchmark":
            sample, origin = self._benchmark(ref)
        elif spec.source == "photo":
            sample, origin = self._photo(ref, content_rng)
        else:
            sample, origin = self._world(ref)
        if sample.task != ref.task:
            raise ValueError(f"item {ref.key}: the source produced a sample of task {sample.task!r}")
        from pixwizard.tasks.codecs import get_codec

        target = get_codec(spec.codec).encode(sample)
        if self.suite.kind == "generated" and is_degenerate(sample.input, target):
            raise DegenerateItemError(f"item {ref.key}: the input equals its target ({origin}); the identity "
                                      "would score it perfectly")
        instruction = sample.meta.get("instruction")
        if not instruction:
            from pixwizard.tasks.instructions import make_instruction

            instruction = make_instruction(ref.task, sample.slots, text_rng, self.suite.split)
        return EvalItem(ref, sample, target, str(instruction), origin)

    def _photo(self, ref: ItemRef, rng: np.random.Generator) -> tuple[Sample, dict[str, Any]]:
        from pixwizard.data.photo.registry import PHOTO_GENERATORS, prepare_photo

        if not self.photos:
            raise FileNotFoundError(f"task {ref.task!r} needs photos; none were resolved for suite {self.suite.name!r}")
        for draw in range(MAX_DRAWS):  # a crop whose input equals its target: another photo and crop
            photo = self.photos[int(rng.integers(len(self.photos)))]
            clean = prepare_photo(photo.load(), int(self.suite.size or 0), rng)
            try:
                sample = PHOTO_GENERATORS[ref.task](clean, rng)
                break
            except DegenerateItemError as e:
                if draw == MAX_DRAWS - 1:
                    raise DegenerateItemError(f"item {ref.key}: {MAX_DRAWS} photo crops gave no usable item, "
                                              f"e.g. {e}") from None
        origin: dict[str, Any] = {"photo": str(photo.path) if photo.path else f"skimage.data.{photo.name}"}
        if draw:
            origin["degenerate_redraws"] = draw
        if "caption" in get_task(ref.task).slots and not sample.slots.get("caption"):
            sample.slots["caption"] = photo.caption or self.suite.default_caption
            origin["caption_source"] = "photo" if photo.caption else "suite default_caption"
        return sample, origin

    def _world(self, ref: ItemRef) -> tuple[Sample, dict[str, Any]]:
        from pixwizard.data.world.generators import WORLD_GENERATORS

        world_seed = self.suite.world_seeds[0] + ref.index
        if world_seed >= self.suite.world_seeds[1]:
            raise ValueError(f"item {ref.key}: world seed {world_seed} is outside the suite's world_seeds")
        sample = WORLD_GENERATORS[ref.task](world_seed, self.textures, int(self.suite.size or 0))
        return sample, {"world_seed": world_seed}

    def _benchmark(self, ref: ItemRef) -> tuple[Sample, dict[str, Any]]:
        sample = self.benchmark[ref.source_index]
        return sample, {"dataset": self.suite.source, "dataset_index": ref.source_index}


def open_benchmark(suite: SuiteConfig, data_root: str | Path | None) -> tuple[Any, dict[str, list[int]]]:
    """Open the suite's dataset and index its items by task (``(source, task -> dataset indices)``).

    The task of a dataset item is known only from its Sample, so sources holding several tasks are
    read once to sort them; single-task sources are not read here."""
    if suite.kind != "benchmark":
        raise ValueError(f"suite {suite.name!r} is not a benchmark suite")
    if data_root is None:
        raise ValueError(f"suite {suite.name!r} reads the {suite.source} dataset: give --data-root DIR "
                         "(the dataset's folder in its published layout)")
    from pixwizard.data.sources import open_source

    src = open_source(str(suite.source), data_root, suite.source_split, **suite.source_options)
    wanted = [t for t in suite.tasks if t in src.tasks]
    missing = [t for t in suite.tasks if t not in src.tasks]
    if missing:
        raise ValueError(f"suite {suite.name!r}: the {suite.source} source does not provide task(s) {missing}; "
                         f"it provides {list(src.tasks)}")
    if len(src.tasks) == 1:
        return src, {wanted[0]: list(range(len(src)))}
    by_task: dict[str, list[int]] = {t: [] for t in wanted}
    cap = suite.items_per_task
    for i in range(len(src)):
        if cap is not None and all(len(v) >= cap for v in by_task.values()):
            break
        task = src[i].task
        if task in by_task:
            by_task[task].append(i)
    return src, by_task

