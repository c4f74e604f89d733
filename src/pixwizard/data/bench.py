"""Generator throughput: triplets per second per task on one core.

A triplet here is everything ``make_item`` does for one item: source crop (photo tasks) or scene
render (world tasks), the generator, the target codec and the instruction. Not counted: PNG
encoding and tar writing (the builder's I/O), and decoding source photos from disk (the bench
uses at most ``max_photos`` photos, decoded once and kept in the cache, as in a long build).
The first item of every task is a warm-up and is not timed (e.g. a world client starting).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import cv2

from pixwizard.data.builder import ItemContext, ToolkitFactory, default_toolkit, make_item
from pixwizard.data.recipe import MixtureSpec, Recipe


def _single_core() -> tuple[int, int | None]:
    before_cv = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        import torch
    except ImportError:
        return before_cv, None
    before_torch = torch.get_num_threads()
    torch.set_num_threads(1)
    return before_cv, before_torch


def _restore(cv_threads: int, torch_threads: int | None) -> None:
    cv2.setNumThreads(cv_threads)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def bench_generators(size: int = 256, seconds_per_task: float = 2.0, tasks: Sequence[str] | None = None,
                     photo_dirs: Sequence[str | Path] = (), max_photos: int = 8, seed: int = 0,
                     toolkit_factory: ToolkitFactory = default_toolkit, print_json: bool = True) -> dict[str, Any]:
    """Time each task's triplet making on one core; prints and returns a JSON-able dict::

        {"size": 256, "threads": 1, "seconds_per_task": 2.0,
         "tasks": {task: {"triplets_per_s": float, "items": int, "source": "photo"|"world"}},
         "skipped": {task: reason}}

    Photo tasks are skipped (with the reason) when ``photo_dirs`` holds no photos.
    """
    if seconds_per_task <= 0:
        raise ValueError(f"seconds_per_task must be > 0, got {seconds_per_task}")
    toolkit = toolkit_factory()
    names = list(tasks) if tasks is not None else sorted(toolkit.tasks)
    unknown = sorted(set(names) - set(toolkit.tasks))
    if unknown:
        raise ValueError(f"unknown task id(s) {', '.join(unknown)}; known: {', '.join(sorted(toolkit.tasks))}")
    photos: list[str] = []
    for d in photo_dirs:
        photos.extend(str(p) for p in toolkit.list_photos(Path(d).expanduser()))
    photos = sorted(photos)[:max_photos]
    result: dict[str, Any] = {"size": size, "threads": 1, "seconds_per_task": seconds_per_task,
                              "tasks": {}, "skipped": {}}
    saved = _single_core()
    try:
        for task in names:
            backend = toolkit.tasks[task]
            if backend.source == "photo" and not photos:
                result["skipped"][task] = "no photos (pass photo_dirs; fetch with `pixwizard data photos DIR`)"
                continue
            recipe = Recipe(name="bench", tasks={task: 1.0}, mixture=MixtureSpec(stage="counts"), size=size,
                            seed=seed)
            ctx = ItemContext(recipe, toolkit, photos, None)
            make_item(0, task, ctx)  # warm-up
            n, start = 0, time.perf_counter()
            while True:
                make_item(1 + n, task, ctx)
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds_per_task:
                    break
            result["tasks"][task] = {"triplets_per_s": round(n / elapsed, 2), "items": n, "source": backend.source}
    finally:
        _restore(*saved)
    if print_json:
        print(json.dumps(result, indent=1))
    return result
