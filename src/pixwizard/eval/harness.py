"""The evaluation harness: predict every item of a suite, then score it, resumably.

Layout of a run folder (``run_dir = OUT/<suite>/<model tag>``)::

    run.json                      suite config, model spec, untrained flag
    items/<task>/<k:04d>/         one folder per item
        input.png target.png      the item (target = the task codec's encoding of the truth)
        truth_<key>.npy           typed truth (mask, boxes, depth, normals, labels, instances)
        item.json                 task, instruction, slots, seed, origin, meta (written LAST: marks
                                  the item as generated)
        output.png                the prediction (its presence marks the item as predicted)
        error.json                why the item could not be generated (retried on the next run)
    metrics.json                  per task: metric values, n items, skipped metrics with reasons, and
                                  the blockiness of the outputs (below)

Phase 1 (``predict_run``) writes the item files, each atomically (temp file + rename); an item
whose ``item.json`` exists is not regenerated and one whose ``output.png`` exists is not
predicted again, so a killed run resumes where it stopped. Phase 2 (``score_run``) reads the
files back and reruns cheaply. Outputs are decoded with the task's codec for typed metrics; the
typed truth comes from the sample itself (exact floats), never from the 8-bit target picture.

Metric inputs (``METRIC_ARGS``; overrides per (metric, task) in ``TASK_METRIC_ARGS``):
- psnr/ssim/psnr_y/ssim_y: output vs target image.
- ciou/giou: decoded mask vs truth mask; box_acc50: the largest decoded box vs the first truth box.
- absrel/rmse/delta1: decoded depth vs truth depth on pixels whose truth is finite and inside
  the codec's depth range; normals: decoded vs truth normals (pooled); miou/pixel_acc: decoded
  labels vs truth labels (``num_classes`` = the semseg palette size unless the suite says).
- edge_f1: canny: output vs target edge map. Control (canny/sketch -> image): the control map is
  re-derived from the OUTPUT with the generator's own parameters (``meta["params"]``) and compared
  with the input control map (faithfulness to the condition).
- preserve_psnr: PSNR to the input outside the truth edit mask; masked_psnr: PSNR to the
  target inside the truth hole.
- faithfulness (world control and t2i, no hub weights): ``colour_position_accuracy``.

Every task's outputs also get ``blockiness`` (``pixwizard.eval.metrics.blockiness``: mean gradient
across the token grid's borders over the mean inside, <= 1.1 = no visible grid), the mean over the
items in ``tasks[task]["blockiness"]`` (kept apart from the task's own ``metrics``) and per item
in ``item_scores.json``; the grid is the predictor's ``block_size`` (the model's patch size times
its codec's downsample; ``DEFAULT_BLOCK`` = 8, the tiny model's, for baselines), recorded in
``run.json`` and ``metrics.json["block_size"]``. ``target_blockiness`` is the same measure on the
targets: the level the content itself has on that grid (small items with a few strong edges, JPEG
and super-resolution inputs, renders of boxes can sit above 1.1 without any model).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import cv2
import numpy as np

from pixwizard.eval.metrics import METRICS, MeanOf, MetricSpec, MetricUnavailable
from pixwizard.eval.metrics.blockiness import DEFAULT_BLOCK, blockiness as grid_blockiness
from pixwizard.eval.metrics import colour_position_accuracy  # noqa: F401  (re-exported)
from pixwizard.eval.scene_truth import scene_instances
from pixwizard.eval.suites import EvalItem, ItemFactory, ItemRef, SuiteConfig, item_refs, open_benchmark, resolve_photos
from pixwizard.imageio import remove_dead_writers_temps, save_array_npy
from pixwizard.tasks.codecs import Decoded, SEMSEG_PALETTE, get_codec
from pixwizard.tasks.registry import get_task

ITEM_JSON, INPUT_PNG, TARGET_PNG, OUTPUT_PNG, ERROR_JSON = "item.json", "input.png", "target.png", "output.png", \
    "error.json"
RUN_JSON, METRICS_JSON = "run.json", "metrics.json"
MAX_PIXELS = 1 << 26


# ----------------------------------------------------------------------------- metrics

# Options a metric cannot run without (local weights); missing -> the metric is skipped with a reason.
REQUIRED_OPTIONS: dict[str, tuple[str, ...]] = {
    "clip_i": ("model_path",), "clip_t": ("model_path",), "dino": ("model_path",),
}


def metric_spec(name: str) -> MetricSpec:
    if name in METRICS:
        return METRICS[name]
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")


# ----------------------------------------------------------------------------- metric inputs


@dataclass
class ItemView:
    """Everything scoring sees of one item: uint8 HxWx3 images, typed truth, the decoded output."""

    task: str
    input: np.ndarray
    target: np.ndarray
    output: np.ndarray
    decoded: Decoded
    truth: dict[str, np.ndarray]
    slots: dict[str, str]
    meta: dict[str, Any]

    def need(self, key: str) -> np.ndarray:
        if key not in self.truth:
            raise ValueError(f"task {self.task!r}: scoring needs truth[{key!r}], the item has {sorted(self.truth)}")
        return self.truth[key]

    def decoded_field(self, name: str) -> Any:
        value = getattr(self.decoded, name)
        if value is None:
            raise ValueError(f"task {self.task!r}: its codec does not decode a {name!r} field")
        return value


def _image(v: ItemView) -> tuple:
    return (v.output, v.target)


def _depth(v: ItemView) -> tuple:
    gt = v.need("depth").astype(np.float64)
    near, far = v.decoded.depth_range or (0.0, math.inf)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(gt) & (gt >= near) & (gt <= far)
    return (v.decoded_field("depth"), gt, valid)


def _first_box(v: ItemView) -> tuple:
    boxes = v.decoded_field("boxes")
    gt = np.asarray(v.need("boxes"), dtype=np.float64).reshape(-1, 4)
    if not len(gt):
        raise ValueError(f"task {v.task!r}: the item has no truth box")
    return (boxes[0] if boxes else None, gt[0])


def _rederived_canny(v: ItemView) -> tuple:
    """Canny of the output with the generator's blur and thresholds (pixwizard.data.photo.edges)."""
    p = v.meta.get("params", {})
    if not {"blur", "low", "high"} <= set(p):
        raise ValueError("canny_to_image scoring needs meta['params'] blur/low/high from the generator")
    grey = cv2.GaussianBlur(cv2.cvtColor(v.output, cv2.COLOR_RGB2GRAY), (0, 0), float(p["blur"]))
    return (cv2.Canny(grey, float(p["low"]), float(p["high"])), v.input)


def _rederived_sketch(v: ItemView) -> tuple:
    """Line art of the output with the generator's blur and power, lines (dark strokes) inverted to
    bright so edge_f1 compares strokes with strokes."""
    p = v.meta.get("params", {})
    if not {"blur", "power"} <= set(p):
        raise ValueError("sketch_to_image scoring needs meta['params'] blur/power from the generator")
    grey = cv2.cvtColor(v.output, cv2.COLOR_RGB2GRAY)
    inv_blur = cv2.GaussianBlur(255 - grey, (0, 0), float(p["blur"]))
    dodge = cv2.divide(grey, 255 - inv_blur, scale=256)
    lut = (255.0 * (np.arange(256) / 255.0) ** float(p["power"]) + 0.5).astype(np.uint8)
    return (255 - cv2.LUT(dodge, lut), 255 - v.input)


def _faithfulness(v: ItemView) -> tuple:
    objects = v.meta.get("scene", {}).get("objects")
    if objects is None:
        raise ValueError(f"task {v.task!r}: faithfulness needs the scene graph in meta['scene']")
    return (v.output, v.target, v.need("instances"), [str(o["colour"]) for o in objects])


MetricArgs = Callable[[ItemView], tuple]
METRIC_ARGS: dict[str, MetricArgs] = {
    **{m: _image for m in ("psnr", "ssim", "psnr_y", "ssim_y", "clip_i", "dino", "fid", "kid")},
    "clip_t": lambda v: (v.output, v.slots.get("caption") or v.meta.get("instruction", "")),
    "ciou": lambda v: (v.decoded_field("mask"), v.need("mask")),
    "giou": lambda v: (v.decoded_field("mask"), v.need("mask")),
    "box_acc50": _first_box,
    **{m: _depth for m in ("absrel", "rmse", "delta1")},
    **{m: (lambda v: (v.decoded_field("normals"), v.need("normals")))
       for m in ("mean_angle", "median_angle", "pct_11_25")},
    **{m: (lambda v: (v.decoded_field("labels"), v.need("labels").astype(np.int64))) for m in ("miou", "pixel_acc")},
    "edge_f1": _image,
    "preserve_psnr": lambda v: (v.output, v.input, v.need("mask")),
    "masked_psnr": lambda v: (v.output, v.target, v.need("mask")),
    "faithfulness": _faithfulness,
}
TASK_METRIC_ARGS: dict[tuple[str, str], MetricArgs] = {
    ("edge_f1", "canny_to_image"): _rederived_canny,
    ("edge_f1", "sketch_to_image"): _rederived_sketch,
}
# Default accumulator options per metric (the suite's metric_options override them).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "miou": {"num_classes": len(SEMSEG_PALETTE)}, "pixel_acc": {"num_classes": len(SEMSEG_PALETTE)},
}
# Truth a metric needs that generators do not always store, and how the harness derives it.
TRUTH_FOR_METRIC: dict[str, str] = {"faithfulness": "instances"}


def metric_args(metric: str, task: str) -> MetricArgs:
    fn = TASK_METRIC_ARGS.get((metric, task), METRIC_ARGS.get(metric))
    if fn is None:
        raise ValueError(f"the harness does not know what metric {metric!r} compares")
    return fn


# ----------------------------------------------------------------------------- predictors


class Predictor(Protocol):
    """``predictor(image, instruction, task, slots, seed) -> HxWx3 uint8`` at the input's size."""

    tag: str  # folder name of its runs
    spec: str  # what the user asked for (--model)
    untrained: bool
    block_size: int  # pixel footprint of one token (blockiness grid); baselines: DEFAULT_BLOCK

    def __call__(self, image: np.ndarray, instruction: str, task: str, slots: dict[str, str],
                 seed: int) -> np.ndarray: ...


@dataclass
class BaselinePredictor:
    """A classical baseline; ``"auto"`` uses ``baseline_for(task)`` for each task."""

    baseline: str
    untrained: bool = False
    block_size: int = DEFAULT_BLOCK  # the tiny model's grid, so baseline and model rows compare

    def __post_init__(self) -> None:
        from pixwizard.eval.baselines import BASELINES

        if self.baseline != "auto" and self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; known: auto, {', '.join(BASELINES)}")

    @property
    def tag(self) -> str:
        return f"baseline-{self.baseline}"

    @property
    def spec(self) -> str:
        return f"baseline:{self.baseline}"

    def name_for(self, task: str) -> str:
        from pixwizard.eval.baselines import baseline_for

        return baseline_for(task) if self.baseline == "auto" else self.baseline

    def __call__(self, image: np.ndarray, instruction: str, task: str, slots: dict[str, str],
                 seed: int) -> np.ndarray:
        from pixwizard.eval.baselines import run_baseline

        return run_baseline(self.name_for(task), image, task, slots)


@dataclass
class ModelPredictor:
    """A PixWizard checkpoint through ``PixWizardPipeline``; the item seed seeds the noise."""

    pipe: Any
    spec: str
    steps: int | None = None
    shifts: int | None = None
    tile: int | None = None  # run in tiles of this side (``PixWizardPipeline(tile=)``)

    @property
    def tag(self) -> str:  # sampling options other than the model's own name the folder: no mixing of runs
        base = "model-default" if self.spec == "default" else f"model-{Path(self.spec).stem}"
        options = (("steps", self.steps), ("shifts", self.shifts), ("tile", self.tile))
        return base + "".join(f"-{k}{v}" for k, v in options if v is not None)

    @property
    def untrained(self) -> bool:
        return bool(self.pipe.untrained)

    @property
    def block_size(self) -> int:
        return self.pipe.config.pixel_multiple

    def __call__(self, image: np.ndarray, instruction: str, task: str, slots: dict[str, str],
                 seed: int) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the untrained warning is recorded once in run.json
            return self.pipe(image, instruction, steps=self.steps, seed=seed, task=task, decode=False,
                             shifts=self.shifts, tile=self.tile).image


def make_predictor(model: str, *, device: str | None = None, steps: int | None = None,
                   shifts: int | None = None, tile: int | None = None) -> Predictor:
    """``baseline:NAME`` / ``baseline:auto`` / ``default`` (the shipped checkpoint) / a checkpoint path."""
    if model.startswith("baseline:"):
        return BaselinePredictor(model.split(":", 1)[1])
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    if shifts is not None and shifts not in (1, 2, 4):
        raise ValueError(f"--shifts must be 1, 2 or 4, got {shifts}")
    from pixwizard.pipeline import PixWizardPipeline

    if model != "default" and not Path(model).is_file():
        raise FileNotFoundError(f"--model {model}: no such checkpoint file (or use default, baseline:auto, "
                                "baseline:NAME)")
    if tile is not None:  # a bad tile is refused before the model loads (the file's config says its grid)
        from pixwizard.checkpoint import DEFAULT_CHECKPOINT, read_info
        from pixwizard.config import preset
        from pixwizard.pipeline import check_tile

        path = DEFAULT_CHECKPOINT if model == "default" else Path(model)
        check_tile(tile, None, (read_info(path).config if path.is_file() else preset("tiny")).pixel_multiple)
    return ModelPredictor(PixWizardPipeline.from_pretrained(None if model == "default" else model, device=device),
                          str(model), steps, shifts, tile)


# ----------------------------------------------------------------------------- files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Through a temporary file named with this process id, so that a rerun after ``kill -9``
    removes it (``remove_dead_writers_temps``)."""
    from pixwizard.imageio import _atomic_write

    _atomic_write(path, lambda f: f.write(data))


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(jsonable(data), indent=1, allow_nan=False).encode())


def write_png(path: Path, image: np.ndarray) -> None:
    from pixwizard.imageio import save_image

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, image)


def read_png(path: Path) -> np.ndarray:
    from pixwizard.imageio import load_image

    return load_image(path, max_pixels=MAX_PIXELS)


def jsonable(x: Any) -> Any:
    """numpy scalars/arrays -> Python; non-finite floats -> "inf" / "-inf" / "nan" strings."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def item_dir(run_dir: Path, ref: ItemRef) -> Path:
    return run_dir / "items" / ref.key


def write_item(folder: Path, item: EvalItem, suite: SuiteConfig) -> None:
    """Input, target and typed truth first, ``item.json`` last (the marker of a complete item)."""
    write_png(folder / INPUT_PNG, item.sample.input)
    write_png(folder / TARGET_PNG, item.target)
    truth = {k: np.asarray(v) for k, v in item.sample.truth.items() if k != "image"}
    if "image" in item.sample.truth and get_task(item.ref.task).codec != "image":
        truth["image"] = np.asarray(item.sample.truth["image"])
    for metric in suite.task_metrics(item.ref.task):
        key = TRUTH_FOR_METRIC.get(metric)
        if key and key not in truth:
            truth[key] = scene_instances(item)
    for key, value in truth.items():
        save_array_npy(folder / f"truth_{key}.npy", value)
    record = {"key": item.ref.key, "task": item.ref.task, "index": item.ref.index, "k": item.ref.k,
              "seed": item.ref.seed, "instruction": item.instruction, "slots": item.sample.slots,
              "origin": item.origin, "truth_keys": sorted(truth), "meta": item.sample.meta}
    (folder / ERROR_JSON).unlink(missing_ok=True)
    write_json(folder / ITEM_JSON, record)


# ----------------------------------------------------------------------------- phase 1


@dataclass
class PredictStats:
    generated: int = 0
    predicted: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # item key -> reason
    predict_seconds: float = 0.0


# Errors that make one item unusable (a corrupt dataset file, an impossible scene, a truth the
# codec cannot encode): the item is recorded with its reason and the run goes on.
ITEM_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError)


def prepare_run(suite: SuiteConfig, *, limit: int | None = None, photo_dirs: list[str] | None = None,
                data_root: str | Path | None = None) -> tuple[list[ItemRef], ItemFactory]:
    """The suite's item list and the factory that makes them (photos / dataset resolved)."""
    if suite.kind == "benchmark":
        source, by_task = open_benchmark(suite, data_root)
        return item_refs(suite, limit, by_task), ItemFactory(suite, benchmark=source)
    textures = None
    if suite.textures:
        from pixwizard.data.photos import list_photos

        textures = list_photos(suite.textures)
    return item_refs(suite, limit), ItemFactory(suite, photos=resolve_photos(suite, photo_dirs), textures=textures)


def check_run_dir(run_dir: Path, suite: SuiteConfig, predictor: Predictor) -> None:
    """Write run.json, or check that an existing one is the same suite and model (no mixing)."""
    record = {"suite": suite.name, "suite_config": asdict(suite), "model": predictor.spec, "tag": predictor.tag,
              "untrained": predictor.untrained, "block_size": predictor.block_size}
    path = run_dir / RUN_JSON
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("suite_config") != jsonable(record["suite_config"]) or old.get("model") != predictor.spec:
            raise ValueError(f"{run_dir} holds a run of suite {old.get('suite')!r} with model {old.get('model')!r} "
                             "and a different configuration; use another --out or delete it")
        return
    write_json(path, record)


def corrupt_item_reason(folder: Path, e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"corrupt cached item, skipped ({type(e).__name__}: {text}); delete {folder} to make it again"


def predict_run(suite: SuiteConfig, predictor: Predictor, run_dir: Path, refs: list[ItemRef],
                factory: ItemFactory, progress: bool = True) -> PredictStats:
    """Phase 1: generate missing items, predict missing outputs (see the module doc)."""
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, suite, predictor)
    stats = PredictStats()
    for ref in tqdm(refs, desc=f"{suite.name} / {predictor.tag}", unit="item", disable=not progress):
        folder = item_dir(run_dir, ref)
        if not (folder / ITEM_JSON).is_file():
            try:
                item = factory.make(ref)
                write_item(folder, item, suite)
            except ITEM_ERRORS as e:
                reason = f"{type(e).__name__}: {e}"
                stats.failed[ref.key] = reason
                write_json(folder / ERROR_JSON, {"key": ref.key, "error": reason})
                continue
            stats.generated += 1
        if (folder / OUTPUT_PNG).is_file():
            stats.reused += 1
            continue
        try:
            record = json.loads((folder / ITEM_JSON).read_text())
            image = read_png(folder / INPUT_PNG)
        except ITEM_ERRORS as e:  # json's errors are ValueErrors; a damaged cache: skip and count
            stats.failed[ref.key] = corrupt_item_reason(folder, e)
            continue
        t0 = time.perf_counter()
        out = predictor(image, record["instruction"], ref.task, record["slots"], int(record["seed"]))
        stats.predict_seconds += time.perf_counter() - t0
        if out.dtype != np.uint8 or out.shape != image.shape:
            raise RuntimeError(f"{predictor.spec} returned {out.dtype} {out.shape} for an input of {image.shape}")
        write_png(folder / OUTPUT_PNG, out)
        stats.predicted += 1
    return stats


# ----------------------------------------------------------------------------- phase 2


def load_view(folder: Path) -> ItemView:
    record = json.loads((folder / ITEM_JSON).read_text())
    task = record["task"]
    inp, out = read_png(folder / INPUT_PNG), read_png(folder / OUTPUT_PNG)
    truth = {k: np.load(folder / f"truth_{k}.npy", allow_pickle=False) for k in record["truth_keys"]}
    decoded = get_codec(get_task(task).codec).decode(out, inp, record["slots"])
    meta = dict(record["meta"])
    meta.setdefault("instruction", record["instruction"])
    return ItemView(task, inp, read_png(folder / TARGET_PNG), out, decoded, truth, record["slots"], meta)


@dataclass
class _TaskScore:
    metrics: tuple[str, ...]
    accs: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    item_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_items: int = 0
    missing: dict[str, str] = field(default_factory=dict)
    blockiness: MeanOf = field(default_factory=lambda: MeanOf(grid_blockiness))  # of every output (module doc)
    target_blockiness: MeanOf = field(default_factory=lambda: MeanOf(grid_blockiness))  # the same on the targets


def _new_accumulator(suite: SuiteConfig, task: str, metric: str, score: _TaskScore) -> Any:
    options = {**DEFAULT_OPTIONS.get(metric, {}), **suite.options(task, metric)}
    lacking = [o for o in REQUIRED_OPTIONS.get(metric, ()) if o not in options]
    if lacking:
        score.skipped[metric] = (f"{metric} needs local weights: set metric_options.{task}.{metric}."
                                 f"{lacking[0]} in the suite")
        return None
    try:
        return metric_spec(metric).new(**options)
    except MetricUnavailable as e:
        score.skipped[metric] = str(e)
        return None


def score_run(suite: SuiteConfig, run_dir: Path, refs: Iterable[ItemRef]) -> dict[str, Any]:
    """Phase 2: score every predicted item; returns (and writes) the metrics.json content."""
    run = json.loads((run_dir / RUN_JSON).read_text()) if (run_dir / RUN_JSON).is_file() else {}
    block = int(run.get("block_size", DEFAULT_BLOCK))
    scores = {t: _TaskScore(suite.task_metrics(t), blockiness=MeanOf(grid_blockiness, {"block": block}),
                            target_blockiness=MeanOf(grid_blockiness, {"block": block})) for t in suite.tasks}
    per_item: dict[str, dict[str, Any]] = {}
    for ref in refs:
        folder, score = item_dir(run_dir, ref), scores[ref.task]
        if not (folder / ITEM_JSON).is_file() or not (folder / OUTPUT_PNG).is_file():
            err = folder / ERROR_JSON
            score.missing[ref.key] = json.loads(err.read_text())["error"] if err.is_file() else "not predicted yet"
            continue
        try:
            view = load_view(folder)
        except ITEM_ERRORS + (KeyError,) as e:
            score.missing[ref.key] = corrupt_item_reason(folder, e)
            continue
        score.n_items += 1
        item_scores: dict[str, Any] = {}
        for metric in score.metrics:
            if metric in score.skipped:
                continue
            if metric not in score.accs:
                acc = _new_accumulator(suite, ref.task, metric, score)
                if acc is None:
                    continue
                score.accs[metric] = acc
            acc = score.accs[metric]
            try:
                acc.update(*metric_args(metric, ref.task)(view))
            except ValueError as e:  # undefined for this item (e.g. an edit mask covering everything)
                bucket = score.item_errors.setdefault(metric, {"count": 0, "first": f"{ref.key}: {e}"})
                bucket["count"] += 1
                continue
            if isinstance(acc, MeanOf):
                item_scores[metric] = acc.values[-1]
        try:
            score.blockiness.update(view.output)
            item_scores["blockiness"] = score.blockiness.values[-1]
            score.target_blockiness.update(view.target)
        except ValueError as e:  # an output no larger than one token
            score.item_errors.setdefault("blockiness", {"count": 0, "first": f"{ref.key}: {e}"})["count"] += 1
        per_item[ref.key] = item_scores
    result = {"suite": suite.name, "protocol": suite.protocol, "block_size": block, "tasks": {}}
    for task, score in scores.items():
        values: dict[str, Any] = {}
        for metric, acc in score.accs.items():
            try:
                values[metric] = acc.compute()
            except ValueError as e:
                score.skipped[metric] = f"undefined on these items: {e}"
        spec = get_task(task)
        result["tasks"][task] = {
            "domain": spec.domain, "source": spec.source, "n_items": score.n_items, "metrics": values,
            "higher_is_better": {m: metric_spec(m).higher_is_better for m in score.metrics},
            "metric_order": list(score.metrics), "skipped": score.skipped, "item_errors": score.item_errors,
            "missing": score.missing,
            "blockiness": score.blockiness.compute() if score.blockiness.values else None,
            "target_blockiness": score.target_blockiness.compute() if score.target_blockiness.values else None,
        }
    write_json(run_dir / METRICS_JSON, result)
    write_json(run_dir / "item_scores.json", per_item)
    return result


def evaluate(suite: SuiteConfig, predictor: Predictor, run_dir: Path, *, limit: int | None = None,
             photo_dirs: list[str] | None = None, data_root: str | Path | None = None,
             progress: bool = True) -> tuple[dict[str, Any], PredictStats]:
    """Both phases: predict (resumable) then score; returns (metrics.json content, phase-1 stats)."""
    refs, factory = prepare_run(suite, limit=limit, photo_dirs=photo_dirs, data_root=data_root)
    if run_dir.is_dir():  # temporary files of a killed run (a live writer's are kept)
        remove_dead_writers_temps(run_dir)
    stats = predict_run(suite, predictor, run_dir, refs, factory, progress=progress)
    return score_run(suite, run_dir, refs), stats
