"""``pixwizard bench data --engine ray``: build throughput of the Ray engine beside the local one.

The same recipe (the chosen tasks, ``items_per_task`` each, one item per shard so every item is
a task the engines can spread) is built twice into temporary folders: by the local process pool
with ``workers`` processes and by the Ray engine on the cluster. Each figure is end-to-end
triplets per second of the build (generators, codecs, PNG encoding, tar writing, manifest); Ray's
start-up (joining or starting the runtime) is timed apart and not included. ``identical`` says
whether the two builds' shard checksums agree (they must).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from pixwizard.data.builder import build_dataset, default_toolkit
from pixwizard.data.engine_ray import RayShardExecutor
from pixwizard.data.recipe import MixtureSpec, Recipe
from pixwizard.ray_runtime import ray_runtime


def bench_build_engines(*, size: int = 256, items_per_task: int = 4, tasks: Sequence[str] | None = None,
                        photo_dirs: Sequence[str] = (), workers: int | None = None,
                        address: str | None = None, scratch: str | Path | None = None) -> dict[str, Any]:
    """Build one recipe with both engines; returns a JSON-able dict of the two figures.

    ``scratch``: the folder the two builds go to (a temporary folder inside it, removed after);
    on a cluster it must be shared storage. Default: the system temp folder (one machine)."""
    if items_per_task < 1:
        raise ValueError(f"items_per_task must be >= 1, got {items_per_task}")
    workers = workers or os.cpu_count() or 1
    toolkit = default_toolkit()
    names = list(tasks) if tasks else sorted(toolkit.tasks)
    skipped = {}
    if not photo_dirs:
        skipped = {t: "no photos (pass --photos)" for t in names if t in toolkit.tasks
                   and toolkit.tasks[t].source == "photo"}
        names = [t for t in names if t not in skipped]
    if not names:
        raise ValueError("no task to build: photo tasks need --photos DIR")
    recipe = Recipe(name="bench-engines", tasks={t: 1.0 for t in names},
                    mixture=MixtureSpec(stage="balanced", per_task=items_per_task), size=size, seed=0,
                    items_per_shard=1, photo_dirs=tuple(str(Path(d).resolve()) for d in photo_dirs))
    recipe.check_tasks(toolkit.tasks)
    result: dict[str, Any] = {"size": size, "tasks": names, "skipped": skipped,
                              "items": items_per_task * len(names)}
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixwizard-bench-", dir=scratch) as tmp:
        t0 = time.perf_counter()
        local = build_dataset(recipe, Path(tmp) / "local", workers=workers)
        dt = time.perf_counter() - t0
        result["local"] = {"workers": workers, "seconds": round(dt, 2),
                           "triplets_per_s": round(result["items"] / dt, 2)}
        t0 = time.perf_counter()
        with ray_runtime(address) as ray:
            startup = time.perf_counter() - t0
            cpus = int(ray.cluster_resources().get("CPU", 0))
            nodes = len([n for n in ray.nodes() if n.get("Alive")])
            t0 = time.perf_counter()
            remote = build_dataset(recipe, Path(tmp) / "ray", executor=RayShardExecutor())
            dt = time.perf_counter() - t0
        result["ray"] = {"cluster_cpus": cpus, "nodes": nodes, "seconds": round(dt, 2),
                         "triplets_per_s": round(result["items"] / dt, 2), "startup_seconds": round(startup, 2)}
    result["identical"] = [s["sha256"] for s in local["shards"]] == [s["sha256"] for s in remote["shards"]]
    return result
