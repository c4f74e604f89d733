"""The Ray engine of ``pixwizard data build``: every shard is one independent Ray task.

Planning, resume and the manifest are the local engine's (``builder.build_dataset``); only where
shards run differs. A task gets the shard's index, first item and task list plus one shared object
(recipe, source file lists, fingerprint, output folder) put in the object store once, and calls
``builder.run_shard`` exactly as a local worker does, so shards, sidecars and the manifest are
byte-identical to a local build of the same recipe and seed, whatever the cluster size.

Failure model: ``run_shard`` writes the tar to a temp name and renames it, so a worker that dies
mid-shard (OOM kill, node lost) leaves no partial ``shard-*.tar``; Ray retries the task
(``max_retries`` times) and the retry writes the whole shard again. Temp files of dead workers
are removed once every task has finished (and by any later build into the folder). An exception
raised by a generator is not retried: it is a bug or bad input, and the build stops with it, as
the local engine does. A stopped build resumes: finished shards (sidecar matching the build's
fingerprint) are skipped.

At most ``in_flight`` tasks are submitted at a time (default: twice the cluster's CPUs), so a
30M-item build does not put 100k task specs in the scheduler at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from pixwizard.data.builder import (ShardJob, ToolkitFactory, _worker_init, build_dataset, default_toolkit,
                                    run_shard)
from pixwizard.data.recipe import Recipe
from pixwizard.data.shards import remove_stray_temps
from pixwizard.ray_runtime import check_paths_on_every_node, ray_runtime


@dataclass(frozen=True)
class _Shared:
    """What every shard task of one build shares (put in the object store once)."""

    out: str
    recipe: Recipe
    photos: tuple[str, ...]
    textures: tuple[str, ...] | None
    fingerprint: str
    cwd: str  # the driver's working directory: relative recipe paths resolve against it


def _shard_task(shared: _Shared, index: int, first: int, tasks: tuple[str, ...],
                factory: ToolkitFactory) -> dict[str, Any]:
    """Runs on a Ray worker: one shard via the local engine's ``run_shard``."""
    _worker_init()
    if Path(shared.cwd).is_dir():
        os.chdir(shared.cwd)
    job = ShardJob(index=index, first=first, tasks=tasks, out=shared.out, recipe=shared.recipe,
                   photos=shared.photos, textures=shared.textures, fingerprint=shared.fingerprint)
    return run_shard(job, factory)


@dataclass
class RayShardExecutor:
    """``builder.ShardExecutor`` on Ray: yields each shard's sidecar record as its task finishes.
    Connects (``ray_runtime(address)``) only when there are shards to make."""

    address: str | None = None
    max_retries: int = 3
    in_flight: int | None = None

    def __call__(self, jobs: Sequence[ShardJob], factory: ToolkitFactory) -> Iterator[dict[str, Any]]:
        if jobs:
            with ray_runtime(self.address) as ray:
                yield from self._run(ray, jobs, factory)

    def _run(self, ray: Any, jobs: Sequence[ShardJob], factory: ToolkitFactory) -> Iterator[dict[str, Any]]:
        first = jobs[0]
        recipe = first.recipe
        check_paths_on_every_node(ray, [first.out, *recipe.photo_dirs, recipe.texture_dir])
        shared = ray.put(_Shared(first.out, recipe, first.photos, first.textures, first.fingerprint, os.getcwd()))
        task = ray.remote(_shard_task).options(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)
        window = self.in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = iter(jobs)
        running: list[Any] = []
        try:
            while True:
                while len(running) < window:
                    job = next(queue, None)
                    if job is None:
                        break
                    running.append(task.remote(shared, job.index, job.first, job.tasks, factory))
                if not running:
                    break
                done, running = ray.wait(running, num_returns=1)
                yield ray.get(done[0])
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        remove_stray_temps(Path(first.out))  # temp files of workers that died mid-shard (all tasks are done)


def build_dataset_ray(recipe: Recipe, out: Path, *, address: str | None = None,
                      toolkit_factory: ToolkitFactory = default_toolkit, progress: bool = False,
                      max_retries: int = 3, in_flight: int | None = None) -> dict[str, Any]:
    """``build_dataset`` with every pending shard a Ray task on the cluster at ``address`` (see
    ``pixwizard.ray_runtime.ray_runtime``); returns the final manifest. ``toolkit_factory`` must be
    importable on the workers (a module-level function of an installed module)."""
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    executor = RayShardExecutor(address, max_retries=max_retries, in_flight=in_flight)
    return build_dataset(recipe, out, toolkit_factory=toolkit_factory, progress=progress, executor=executor)
