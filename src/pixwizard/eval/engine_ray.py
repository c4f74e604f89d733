"""The Ray engine of ``pixwizard eval``: items fan out to Ray tasks in chunks, metrics are gathered.

Phase 1 is the local harness's ``predict_run`` run on each chunk of item refs by a Ray task: the
task makes (once per worker process) the predictor from the ``--model`` spec and the item factory
from the suite, then generates and predicts its items straight into the run folder, skipping
finished ones exactly as a local run does. Items are pure functions of ``(suite, item index)``
and the per-item noise seed, so the files are those of a local run. Phase 2 (``score_run``) reads
them back on the driver, so ``metrics.json`` and ``item_scores.json`` are the local run's.

A worker that dies mid-chunk loses nothing finished (every file is written atomically, an item is
complete only once its marker file is there); Ray retries the chunk and the retry reuses the
finished items. The run folder, photo folders, dataset root and checkpoint must be on storage
every node sees at the same path (checked up front); see docs/ray.md.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixwizard.eval.harness import PredictStats, check_run_dir, make_predictor, predict_run, prepare_run, score_run
from pixwizard.eval.suites import ItemRef, SuiteConfig
from pixwizard.ray_runtime import check_paths_on_every_node, ray_runtime


@dataclass(frozen=True)
class _RunSpec:
    """Everything a chunk task needs besides its refs (put in the object store once per run)."""

    token: str  # one per run: the per-process cache key
    suite: SuiteConfig
    model: str
    device: str | None
    steps: int | None
    shifts: int | None
    tile: int | None
    run_dir: str
    limit: int | None
    photo_dirs: tuple[str, ...] | None
    data_root: str | None
    cwd: str


_PROCESS_STATE: dict[str, tuple[Any, Any]] = {}  # token -> (predictor, item factory), per worker process


def _chunk_task(spec: _RunSpec, refs: list[ItemRef]) -> dict[str, Any]:
    """Runs on a Ray worker: ``predict_run`` on one chunk; returns its PredictStats as a dict."""
    if Path(spec.cwd).is_dir():
        os.chdir(spec.cwd)
    if spec.token not in _PROCESS_STATE:
        _PROCESS_STATE.clear()  # one run at a time per worker: drop an earlier run's model
        predictor = make_predictor(spec.model, device=spec.device, steps=spec.steps, shifts=spec.shifts,
                                   tile=spec.tile)
        _, factory = prepare_run(spec.suite, limit=spec.limit, photo_dirs=list(spec.photo_dirs or []) or None,
                                 data_root=spec.data_root)
        _PROCESS_STATE[spec.token] = (predictor, factory)
    predictor, factory = _PROCESS_STATE[spec.token]
    return asdict(predict_run(spec.suite, predictor, Path(spec.run_dir), refs, factory, progress=False))


def _merge(total: PredictStats, part: dict[str, Any]) -> None:
    total.generated += part["generated"]
    total.predicted += part["predicted"]
    total.reused += part["reused"]
    total.failed.update(part["failed"])
    total.predict_seconds += part["predict_seconds"]


def chunked(refs: list[ItemRef], size: int) -> list[list[ItemRef]]:
    if size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {size}")
    return [refs[i:i + size] for i in range(0, len(refs), size)]


def evaluate_ray(suite: SuiteConfig, model: str, predictor: Any, run_dir: Path, *, limit: int | None = None,
                 photo_dirs: list[str] | None = None, data_root: str | Path | None = None,
                 device: str | None = None, steps: int | None = None, shifts: int | None = None,
                 tile: int | None = None, chunk_size: int = 16,
                 address: str | None = None, max_retries: int = 3,
                 progress: bool = True) -> tuple[dict[str, Any], PredictStats]:
    """``harness.evaluate`` with phase 1 on Ray; returns (metrics.json content, merged stats).

    ``predictor`` is the driver's ``make_predictor(model, device=device, steps=steps)`` (its tag
    and spec name the run); each worker makes its own from the same ``model`` spec.
    """
    from tqdm import tqdm

    refs, _ = prepare_run(suite, limit=limit, photo_dirs=photo_dirs, data_root=data_root)
    chunks = chunked(refs, chunk_size)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, suite, predictor)  # run.json before any worker writes an item
    stats = PredictStats()
    spec = _RunSpec(uuid.uuid4().hex, suite, model, device, steps, shifts, tile, str(run_dir), limit,
                    tuple(photo_dirs) if photo_dirs else None, str(data_root) if data_root is not None else None,
                    os.getcwd())
    with ray_runtime(address) as ray:
        shared_paths = [run_dir, *(photo_dirs or suite.photo_dirs or ()), suite.textures, data_root]
        if Path(model).is_file():
            shared_paths.append(model)
        check_paths_on_every_node(ray, shared_paths)
        gpus = 1 if device is not None and device.startswith("cuda") else 0
        task = ray.remote(_chunk_task).options(num_cpus=1, num_gpus=gpus, max_retries=max_retries,
                                               retry_exceptions=False)
        spec_ref = ray.put(spec)
        running = {task.remote(spec_ref, chunk): len(chunk) for chunk in chunks}
        bar = tqdm(total=len(refs), desc=f"{suite.name} / {predictor.tag} (ray)", unit="item", disable=not progress)
        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                _merge(stats, ray.get(done[0]))
                bar.update(running.pop(done[0]))
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
    stats.failed = {r.key: stats.failed[r.key] for r in refs if r.key in stats.failed}  # the local order
    return score_run(suite, run_dir, refs), stats
