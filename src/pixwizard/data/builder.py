"""Build a dataset from a recipe: parallel, deterministic per item, resumable, atomic.

Item ``i`` of a recipe is a pure function of ``(recipe, i)`` and the source files: its random
streams come from ``SeedSequence(recipe.seed, spawn_key=(i,))`` (exactly the i-th child of
``SeedSequence(recipe.seed).spawn``), split into independent streams for the photo choice, the
generator and the instruction. Items are grouped into shards of fixed index ranges
(``[k * items_per_shard, (k + 1) * items_per_shard)``), so the bytes of every shard are the same
whatever the number of workers or the order in which shards finish.

A shard is written to a temp file and renamed; a sidecar JSON written after the rename marks it
complete. A rebuild into the same folder deletes stray temp files, keeps complete shards whose
sidecar matches this build's fingerprint (recipe + source file lists) and whose bytes match the
recorded sha256, and makes the rest. A build holds a lock on its folder, so a second one into the
same folder refuses instead of deleting the first one's temp files; workers die with the build.
``manifest.json`` is rewritten atomically after every shard.

The generators, codecs and instruction bank come from a ``Toolkit`` made by a factory: a
module-level function (so it can be named to spawned worker processes), ``default_toolkit``
for the real registries, or a fake one in tests.
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import cv2
import numpy as np

from pixwizard.data.degenerate import DegenerateItemError
from pixwizard.data.mixture import plan_items, task_counts
from pixwizard.data.recipe import Recipe
from pixwizard.data.sample import Sample
from pixwizard.data.shards import (MANIFEST, atomic_write_json, encode_sample, item_key, remove_stray_temps,
                                   shard_name, sidecar_path, write_shard)

FORMAT = "pixwizard-shards/1"
TRUTH_IMAGE_KEY = "image"  # truth["image"] is the target picture: it goes to target.png via the codec


class SourceError(Exception):
    """A source file that cannot be read or decoded (skipped and counted, never fatal per item)."""


# ----------------------------------------------------------------------------- toolkit


@dataclass(frozen=True)
class TaskBackend:
    """How to make one task's items.

    ``source == "photo"``: ``generate(clean: HxWx3 uint8, rng) -> Sample`` (input and target from
    the same crop). ``source == "world"``: ``generate(scene_seed: int, textures: Sequence[Path] |
    None, size: int) -> Sample``. ``encode(sample) -> HxWx3 uint8`` is the task's target codec.
    """

    task: str
    domain: str
    source: Literal["photo", "world"]
    generate: Callable[..., Sample]
    encode: Callable[[Sample], np.ndarray]


@dataclass(frozen=True)
class Toolkit:
    """Everything the builder calls; made in each process by a module-level factory."""

    tasks: Mapping[str, TaskBackend]
    make_instruction: Callable[[str, Mapping[str, str], np.random.Generator, str], str]
    prepare_photo: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    list_photos: Callable[[Path], Sequence[Path]]
    load_photo: Callable[[Path], np.ndarray] = field(default=None)  # type: ignore[assignment]
    versions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.load_photo is None:
            object.__setattr__(self, "load_photo", load_photo_rgb)


ToolkitFactory = Callable[[], Toolkit]


def load_photo_rgb(path: Path) -> np.ndarray:
    """Read a photo as HxWx3 uint8 RGB; SourceError if it is missing, unreadable or corrupt."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None or data.size == 0:
        raise SourceError("missing or empty file")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError("undecodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def default_toolkit() -> Toolkit:
    """The real task registry, codecs, instruction bank, photo and world generators."""
    from pixwizard.data.photo.registry import PHOTO_GENERATORS, prepare_photo
    from pixwizard.data.photos import list_photos
    from pixwizard.data.world.generators import WORLD_GENERATORS
    from pixwizard.tasks.codecs import get_codec
    from pixwizard.tasks.instructions import make_instruction
    from pixwizard.tasks.registry import REGISTRY

    generators = {"photo": PHOTO_GENERATORS, "world": WORLD_GENERATORS}
    tasks = {}
    for spec in REGISTRY.values():
        table = generators[spec.source]
        if spec.id not in table:
            continue  # a task without a generator yet; a recipe naming it is refused by check_tasks
        tasks[spec.id] = TaskBackend(spec.id, spec.domain, spec.source, table[spec.id],
                                     get_codec(spec.codec).encode)
    return Toolkit(tasks=tasks, make_instruction=make_instruction, prepare_photo=prepare_photo,
                   list_photos=list_photos, load_photo=load_photo_pil, versions=package_versions())


def load_photo_pil(path: Path) -> np.ndarray:
    """``pixwizard.data.photos.load_photo`` (Pillow: palette/grey/alpha handled), errors as SourceError."""
    from pixwizard.data.photos import load_photo

    try:
        return load_photo(path)
    except (ValueError, OSError) as e:
        raise SourceError(str(e)) from None


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("pixwizard", "numpy", "opencv-python-headless", "webdataset", "pybullet", "scikit-image"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


# ----------------------------------------------------------------------------- one item


class PhotoCache:
    """Per-process LRU of decoded photos (bounded in bytes); remembers unreadable files too."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[str, np.ndarray | SourceError] = OrderedDict()
        self.bytes = 0

    def get(self, path: str, load: Callable[[Path], np.ndarray]) -> np.ndarray:
        if path not in self.items:
            try:
                value: np.ndarray | SourceError = load(Path(path))
            except SourceError as e:
                value = e
            self.items[path] = value
            self.bytes += value.nbytes if isinstance(value, np.ndarray) else 0
            while self.bytes > self.max_bytes and len(self.items) > 1:
                _, old = self.items.popitem(last=False)
                self.bytes -= old.nbytes if isinstance(old, np.ndarray) else 0
        self.items.move_to_end(path)
        value = self.items[path]
        if isinstance(value, SourceError):
            raise value
        return value


@dataclass
class ItemContext:
    """What every item of a build shares (per process)."""

    recipe: Recipe
    toolkit: Toolkit
    photos: Sequence[str]
    textures: Sequence[Path] | None
    cache: PhotoCache = field(default_factory=PhotoCache)


@dataclass
class Item:
    sample: Sample
    target: np.ndarray
    record: dict[str, Any]
    skipped: list[tuple[str, str]]  # (source path, reason)


def item_seed_sequence(seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence of item ``index``: equal to ``SeedSequence(seed).spawn(index + 1)[index]``."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


def _photo_sample(backend: TaskBackend, ctx: ItemContext, rng: np.random.Generator,
                  gen_rng: np.random.Generator) -> tuple[Sample, dict[str, Any], list[tuple[str, str]]]:
    photos = ctx.photos
    if not photos:
        raise FileNotFoundError(f"task {backend.task!r} needs source photos but the recipe has none "
                                "(set photo_dirs, or fetch some with `pixwizard data photos DIR`)")
    skipped = []
    degenerate: DegenerateItemError | None = None  # a crop whose input equals its target: the next photo
    rejected = 0
    first = int(rng.integers(len(photos)))
    for attempt in range(len(photos)):
        path = photos[(first + attempt) % len(photos)]
        try:
            img = ctx.cache.get(path, ctx.toolkit.load_photo)
        except SourceError as e:
            skipped.append((path, str(e)))
            continue
        clean = ctx.toolkit.prepare_photo(img, ctx.recipe.size, gen_rng)
        try:
            sample = backend.generate(clean, gen_rng)
        except DegenerateItemError as e:
            degenerate, rejected = e, rejected + 1
            continue
        return sample, {"photo": path, **({"degenerate_redraws": rejected} if rejected else {})}, skipped
    if degenerate is not None:
        raise DegenerateItemError(f"no source photo gives a usable item, e.g. {degenerate}")
    raise SourceError(f"none of the {len(photos)} source photos could be read")


def _world_sample(backend: TaskBackend, ctx: ItemContext, rng: np.random.Generator,
                  gen_rng: np.random.Generator) -> tuple[Sample, dict[str, Any], list[tuple[str, str]]]:
    lo, hi = ctx.recipe.seed_range
    scene_seed = lo + int(rng.integers(hi - lo))
    return backend.generate(scene_seed, ctx.textures, ctx.recipe.size), {"world_seed": scene_seed}, []


_SOURCES = {"photo": _photo_sample, "world": _world_sample}


def make_item(index: int, task: str, ctx: ItemContext) -> Item:
    """Generate, encode and phrase item ``index`` (deterministic in ``(recipe, index)``)."""
    backend = ctx.toolkit.tasks[task]
    src_ss, gen_ss, text_ss = item_seed_sequence(ctx.recipe.seed, index).spawn(3)
    sample, origin, skipped = _SOURCES[backend.source](backend, ctx, np.random.default_rng(src_ss),
                                                        np.random.default_rng(gen_ss))
    if sample.task != task:
        raise ValueError(f"generator for {task!r} returned a sample of task {sample.task!r}")
    target = backend.encode(sample)
    if target.dtype != np.uint8 or target.shape != sample.input.shape:
        raise ValueError(f"task {task!r}: target {target.dtype} {target.shape} must be uint8 and "
                         f"aligned with the input {sample.input.shape}")
    instruction = ctx.toolkit.make_instruction(task, sample.slots, np.random.default_rng(text_ss),
                                               ctx.recipe.split)
    record = {"task": task, "domain": backend.domain, "source": backend.source, "instruction": instruction,
              "slots": dict(sample.slots), "meta": dict(sample.meta), "seed": ctx.recipe.seed,
              "index": index, "split": ctx.recipe.split, **origin}
    return Item(sample, target, record, skipped)


def _truth_arrays(sample: Sample) -> dict[str, np.ndarray]:
    out = {}
    for name, value in sample.truth.items():
        if name == TRUTH_IMAGE_KEY:
            continue
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"task {sample.task!r}: truth[{name!r}] is not a numeric array")
        out[name] = arr
    return out


# ----------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class ShardJob:
    index: int
    first: int
    tasks: tuple[str, ...]  # task id of items first, first + 1, ...
    out: str
    recipe: Recipe
    photos: tuple[str, ...]
    textures: tuple[str, ...] | None
    fingerprint: str


_PROCESS_TOOLKITS: dict[ToolkitFactory, Toolkit] = {}  # one toolkit per process and factory


def _toolkit(factory: ToolkitFactory) -> Toolkit:
    if factory not in _PROCESS_TOOLKITS:
        _PROCESS_TOOLKITS[factory] = factory()
    return _PROCESS_TOOLKITS[factory]


def _worker_init(parent_pid: int | None = None) -> None:
    """One thread per worker process (the pool gives the parallelism); torch is not imported here,
    but if a generator imports it later it starts with one thread too. With ``parent_pid`` the
    worker dies with that process, even when it is killed with SIGKILL (no orphans)."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    cv2.setNumThreads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def die_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """End this process when ``parent_pid`` is gone: Linux's parent-death signal where available,
    and a daemon thread that watches the parent id (any POSIX system; covers a parent that died
    before the signal was armed)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def run_shard(job: ShardJob, factory: ToolkitFactory) -> dict[str, Any]:
    """Make, write (atomically) and certify one shard; returns its sidecar record."""
    toolkit = _toolkit(factory)
    ctx = ItemContext(job.recipe, toolkit, job.photos,
                      [Path(t) for t in job.textures] if job.textures is not None else None)
    tasks: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    skipped: list[tuple[str, str]] = []

    def samples():
        for offset, task in enumerate(job.tasks):
            index = job.first + offset
            item = make_item(index, task, ctx)
            tasks[task] += 1
            domains[item.record["domain"]] += 1
            skipped.extend(item.skipped)
            yield encode_sample(item_key(index), item.sample.input, item.target, item.record,
                                _truth_arrays(item.sample))

    path = Path(job.out) / shard_name(job.index)
    done = write_shard(path, samples())
    record = {"shard": path.name, "index": job.index, "first": job.first, "items": done.items,
              "bytes": done.bytes, "sha256": done.sha256, "fingerprint": job.fingerprint,
              "tasks": dict(sorted(tasks.items())), "domains": dict(sorted(domains.items())),
              "skipped": [{"path": p, "reason": r} for p, r in skipped]}
    atomic_write_json(sidecar_path(path), record)
    return record


def shard_is_complete(out: Path, job: ShardJob) -> dict[str, Any] | None:
    """The sidecar of a complete shard of this build, else None (missing, foreign or truncated)."""
    path = out / shard_name(job.index)
    side = sidecar_path(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        record = json.loads(side.read_text())
    except json.JSONDecodeError:
        return None
    ok = (record.get("fingerprint") == job.fingerprint and record.get("items") == len(job.tasks)
          and record.get("first") == job.first and record.get("bytes") == path.stat().st_size
          and record.get("sha256") == file_sha256(path))  # same size, other bytes: made again
    return record if ok else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- build


def _source_files(recipe: Recipe, toolkit: Toolkit, needs_photos: bool) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    photos: list[str] = []
    if needs_photos:
        if not recipe.photo_dirs:
            raise FileNotFoundError(f"recipe {recipe.name!r} has photo tasks but no photo_dirs "
                                    "(fetch photos with `pixwizard data photos DIR`)")
        for d in recipe.photo_dirs:
            folder = Path(d).expanduser()
            if not folder.is_dir():
                raise FileNotFoundError(f"photo folder {folder} does not exist "
                                        "(fetch photos with `pixwizard data photos DIR`)")
            photos.extend(str(p) for p in toolkit.list_photos(folder))
        if not photos:
            raise FileNotFoundError(f"no photos in {', '.join(recipe.photo_dirs)}")
    textures = None
    if recipe.texture_dir is not None:
        folder = Path(recipe.texture_dir).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"texture folder {folder} does not exist")
        textures = tuple(str(p) for p in toolkit.list_photos(folder))
    return tuple(sorted(photos)), textures


def build_fingerprint(recipe: Recipe, photos: Sequence[str], textures: Sequence[str] | None) -> str:
    blob = json.dumps({"format": FORMAT, "recipe": recipe.to_dict(), "photos": list(photos),
                       "textures": list(textures) if textures is not None else None}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan_jobs(recipe: Recipe, out: Path, photos: tuple[str, ...], textures: tuple[str, ...] | None,
              fingerprint: str) -> tuple[dict[str, int], list[ShardJob]]:
    counts = task_counts(recipe.tasks, recipe.mixture)
    plan = plan_items(counts, recipe.seed)
    k = recipe.items_per_shard
    jobs = [ShardJob(index=s, first=s * k, tasks=tuple(plan[s * k:(s + 1) * k]), out=str(out), recipe=recipe,
                     photos=photos, textures=textures, fingerprint=fingerprint)
            for s in range((len(plan) + k - 1) // k)]
    return counts, jobs


def make_manifest(recipe: Recipe, fingerprint: str, counts: Mapping[str, int], n_shards: int,
                  sidecars: Sequence[Mapping[str, Any]], n_photos: int, versions: Mapping[str, str]) -> dict:
    tasks: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    skipped_files: dict[str, str] = {}
    events = 0
    for s in sidecars:
        tasks.update(s["tasks"])
        domains.update(s["domains"])
        events += len(s["skipped"])
        for entry in s["skipped"]:
            skipped_files[entry["path"]] = entry["reason"]
    return {
        "format": FORMAT, "name": recipe.name, "fingerprint": fingerprint, "recipe": recipe.to_dict(),
        "seed": recipe.seed, "split": recipe.split, "size": recipe.size,
        "complete": len(sidecars) == n_shards,
        "planned": {"items": int(sum(counts.values())), "shards": n_shards, "tasks": dict(counts)},
        "counts": {"items": int(sum(tasks.values())), "tasks": dict(sorted(tasks.items())),
                   "domains": dict(sorted(domains.items()))},
        "shards": [{k: s[k] for k in ("shard", "index", "first", "items", "bytes", "sha256", "tasks")}
                   for s in sorted(sidecars, key=lambda s: s["index"])],
        "skipped": {"events": events, "files": dict(sorted(skipped_files.items()))},
        "sources": {"photos": n_photos},
        "versions": dict(versions),
    }


# Runs pending shards elsewhere (e.g. ``pixwizard.data.engine_ray``): yields each shard's sidecar
# record (``run_shard``'s return value) as it finishes, in any order.
ShardExecutor = Callable[[Sequence[ShardJob], ToolkitFactory], Iterable[dict[str, Any]]]


def build_dataset(recipe: Recipe, out: Path, *, workers: int = 1,
                  toolkit_factory: ToolkitFactory = default_toolkit, progress: bool = False,
                  executor: ShardExecutor | None = None) -> dict[str, Any]:
    """Build (or resume building) ``recipe`` into folder ``out``; returns the final manifest.

    ``workers`` > 1 uses spawned processes, each making whole shards; the output bytes do not
    depend on it. ``toolkit_factory`` must be a module-level function when ``workers`` > 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    toolkit = _toolkit(toolkit_factory)
    recipe.check_tasks(toolkit.tasks)
    needs_photos = any(toolkit.tasks[t].source == "photo" for t in recipe.tasks)
    photos, textures = _source_files(recipe, toolkit, needs_photos)
    fingerprint = build_fingerprint(recipe, photos, textures)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; the output must be a folder (new, or one this recipe built)")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):  # a second build into the same folder refuses, never deletes our temp files
        return _build_locked(recipe, out, workers, toolkit, toolkit_factory, photos, textures, fingerprint,
                             progress, executor)


class folder_lock:
    """An exclusive, non-blocking flock on ``folder`` for the time of a build: a second build
    into the same folder gets a one-line error (it would remove the first one's temporary files
    and write the same shards)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.fd = folder, -1

    def __enter__(self) -> "folder_lock":
        self.fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ValueError(f"another data build is writing into {self.folder}; wait for it to finish or "
                             "use another folder") from None
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the lock


def _build_locked(recipe: Recipe, out: Path, workers: int, toolkit: Toolkit, toolkit_factory: ToolkitFactory,
                  photos: tuple[str, ...], textures: tuple[str, ...] | None, fingerprint: str, progress: bool,
                  executor: ShardExecutor | None) -> dict[str, Any]:
    old = out / MANIFEST
    if old.is_file():
        previous = json.loads(old.read_text()).get("fingerprint")
        if previous != fingerprint:
            raise ValueError(f"{out} holds a different build (recipe or source files changed); "
                             "use a new output folder")
    remove_stray_temps(out)
    counts, jobs = plan_jobs(recipe, out, photos, textures, fingerprint)
    sidecars: dict[int, dict[str, Any]] = {}
    for job in jobs:
        record = shard_is_complete(out, job)
        if record is not None:
            sidecars[job.index] = record
    pending = [j for j in jobs if j.index not in sidecars]

    def save() -> dict[str, Any]:
        manifest = make_manifest(recipe, fingerprint, counts, len(jobs), list(sidecars.values()), len(photos),
                                 {**package_versions(), **toolkit.versions})
        atomic_write_json(out / MANIFEST, manifest)
        return manifest

    manifest = save()
    bar = _progress(len(jobs), len(sidecars), progress)
    if executor is not None:  # another engine runs the shards; resume and manifest stay here
        for record in executor(pending, toolkit_factory):
            sidecars[record["index"]] = record
            manifest = save()
            bar(1)
    elif workers == 1:
        for job in pending:
            sidecars[job.index] = run_shard(job, toolkit_factory)
            manifest = save()
            bar(1)
    elif pending:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                    initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(run_shard, job, toolkit_factory) for job in pending]
            try:
                for fut in cf.as_completed(futures):
                    record = fut.result()
                    sidecars[record["index"]] = record
                    manifest = save()
                    bar(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return manifest


def _progress(total: int, done: int, enabled: bool) -> Callable[[int], None]:
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="shard", desc="shards")
    return lambda n: bar.update(n)
