"""Never-repeating photo triplets made on the fly, mixed into the shard stream of a stage.

A long run over built shards cycles over a few thousand fixed photo triplets. With an *online
recipe* (an ordinary data recipe JSON: ``photo_dirs``, ``size``, ``seed``, ``split`` and the photo
tasks with their weights), photo items are generated while training instead:

- Item ``i`` is ``pixwizard.data.builder.make_item(i, task_i, ...)`` with ``task_i`` drawn from the
  recipe weights by a generator seeded with ``(recipe seed, i)``: a pure function of ``i``, so the
  stream never repeats (a new crop, degradation and phrasing per index) and resuming needs only
  the next index. Worker processes compute items ahead; results are used in index order, so the
  batches do not depend on the number of workers.
- :class:`MixedStream` fills each batch slot from the online source with probability ``share``
  (drawn from the shard stream's generator) and otherwise from the shards, skipping shard items
  of the tasks the online source makes (so world scenes, text-to-image and the rest still come
  from rendered shards). Its ``state_dict`` is the shard stream's plus the next online index:
  resuming is exact, as for :class:`~pixwizard.train.data.BatchStream`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pixwizard.train.data import Batch, BatchStream, collate_batch

_TASK_SALT = 0x5EED_7A5C


class OnlineRecipe:
    """The photo tasks of a recipe, their weights, and the photos (resolved once)."""

    def __init__(self, path: str | Path, part: int = 0, cache_bytes: int = 8 << 30):
        from pixwizard.data.builder import ItemContext, PhotoCache, default_toolkit
        from pixwizard.data.recipe import load_recipe

        self.path = str(path)
        recipe = load_recipe(path)
        # each process of a multi-process run draws its own items
        self.recipe = recipe if part == 0 else recipe.replace(seed=recipe.seed + 7919 * part)
        toolkit = default_toolkit()
        tasks = {t: w for t, w in self.recipe.tasks.items() if w > 0}
        not_photo = sorted(t for t in tasks if t not in toolkit.tasks or toolkit.tasks[t].source != "photo")
        if not_photo:
            raise ValueError(f"online recipe {self.path}: only photo tasks can be made on the fly, not "
                             f"{', '.join(not_photo)} (render those into shards)")
        if not tasks:
            raise ValueError(f"online recipe {self.path} names no task with a positive weight")
        photos: list[str] = []
        for d in self.recipe.photo_dirs:
            photos.extend(str(p) for p in toolkit.list_photos(Path(d)))
        if not photos:
            raise ValueError(f"online recipe {self.path}: no usable photos in {list(self.recipe.photo_dirs)}")
        self.tasks = sorted(tasks)
        w = np.array([tasks[t] for t in self.tasks], dtype=np.float64)
        self.probs = w / w.sum()
        # decoded photos stay in memory: re-decoding 4K wallpapers would dominate the cost of an item
        self.ctx = ItemContext(self.recipe, toolkit, sorted(photos), None, cache=PhotoCache(cache_bytes))

    def task_of(self, index: int) -> str:
        rng = np.random.default_rng([self.recipe.seed, _TASK_SALT, index])
        return self.tasks[int(rng.choice(len(self.tasks), p=self.probs))]

    def item(self, index: int) -> dict[str, Any]:
        """Item ``index``: ``{"input", "target", "instruction", "task"}`` (HxWx3 uint8 each image)."""
        from pixwizard.data.builder import make_item

        task = self.task_of(index)
        it = make_item(index, task, self.ctx)
        return {"input": it.sample.input, "target": it.target, "instruction": it.record["instruction"],
                "task": task}


_WORKER_RECIPE: OnlineRecipe | None = None


def _worker_init(path: str, part: int, parent_pid: int | None = None) -> None:
    """One thread per worker; with ``parent_pid`` the worker ends with the trainer, even when the
    trainer is killed with SIGKILL (otherwise the pool's workers outlive it as orphans)."""
    global _WORKER_RECIPE
    import torch

    from pixwizard.data.builder import die_with_parent

    if parent_pid is not None:
        die_with_parent(parent_pid)
    torch.set_num_threads(1)
    _WORKER_RECIPE = OnlineRecipe(path, part)


def _worker_items(start: int, count: int) -> list[dict[str, Any]]:
    assert _WORKER_RECIPE is not None
    return [_WORKER_RECIPE.item(i) for i in range(start, start + count)]


class OnlineSource:
    """Items ``next_index, next_index + 1, ...`` of an online recipe, computed ahead by workers.

    ``workers=0`` computes in the calling process (tests, or when no core is free).
    """

    def __init__(self, path: str | Path, workers: int = 1, part: int = 0, chunk: int = 16, ahead: int = 4):
        self.path = str(path)
        self.local = OnlineRecipe(path, part)
        self.next_index = 0
        self.chunk, self.ahead = chunk, ahead
        self._buffer: deque[dict[str, Any]] = deque()
        self._buffer_start = 0  # index of the first buffered item
        self._pending: deque[Future] = deque()
        self._submitted = 0  # next index to submit
        self._pool = (ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                          initargs=(self.path, part, os.getpid())) if workers > 0 else None)

    @property
    def tasks(self) -> list[str]:
        return self.local.tasks

    def seek(self, index: int) -> None:
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._buffer.clear()
        self.next_index = self._buffer_start = self._submitted = int(index)

    def _fill(self) -> None:
        while self._pool is not None and len(self._pending) < self.ahead:
            self._pending.append(self._pool.submit(_worker_items, self._submitted, self.chunk))
            self._submitted += self.chunk

    def next_item(self) -> dict[str, Any]:
        if self._pool is None:
            item = self.local.item(self.next_index)
        else:
            self._fill()
            if not self._buffer:
                self._buffer.extend(self._pending.popleft().result())
                self._fill()
            item = self._buffer.popleft()
        self.next_index += 1
        return item

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class MixedStream:
    """Batches mixing an :class:`OnlineSource` (probability ``share`` per slot) with a shard stream."""

    def __init__(self, shards: BatchStream, online: OnlineSource, share: float):
        if not 0.0 < share <= 1.0:
            raise ValueError(f"online share must be in (0, 1], got {share}")
        self.shards, self.online, self.share = shards, online, float(share)
        self.skip = frozenset(online.tasks)

    def _shard_item(self) -> dict[str, Any]:
        for _ in range(1_000_000):
            item = self.shards.next_item()
            if item["task"] not in self.skip:
                return item
        raise ValueError(f"{self.shards.folder} holds no items besides the online tasks; with an online share "
                         f"below 1 it must hold the other tasks")

    def _next_item(self) -> dict[str, Any]:
        return self.online.next_item() if self.shards.rng.random() < self.share else self._shard_item()

    def next_batch(self) -> Batch:
        rng = self.shards.rng
        return collate_batch(self._next_item, self.shards.batch_size, int(rng.choice(self.shards.resolutions)), rng)

    def state_dict(self) -> dict[str, Any]:
        return {**self.shards.state_dict(), "online_index": self.online.next_index}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.shards.load_state_dict(state)
        self.online.seek(int(state.get("online_index", 0)))

    def close(self) -> None:
        self.online.close()
