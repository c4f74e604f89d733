"""Training batches from built shards: aligned random crops, resolution buckets, exact resume.

Conventions:
- Images come from :func:`pixwizard.data.shards.iter_dataset` as HxWx3 uint8 RGB and leave here as
  float32 tensors [B, 3, S, S] in [-1, 1] (``x / 127.5 - 1``, as the inference pipeline does).
- Input and target are cropped with ONE offset (the original drew two and misaligned them). No
  flips: they would break "left of" in referring expressions and the sign of normals.
- Every batch has one square side ``S`` drawn from the stage's resolutions (a bucket), so no padding.
- Epoch ``e`` reads the dataset with ``shuffle_seed = seed * 1_000_003 + e`` (shards and items
  permuted); rank ``r`` of ``w`` reads shards ``r, r + w, ...``. Crop offsets and bucket sizes come
  from a numpy Generator seeded with ``(seed, rank)``. :meth:`BatchStream.state_dict` captures
  (epoch, data position, generator state) after the last *returned* batch, so a stream restored
  from it continues with exactly the batches an uninterrupted stream would have returned.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from pixwizard.data.recipe import T2I_TASK
from pixwizard.data.shards import MANIFEST, DataPosition, iter_dataset, list_shards
from pixwizard.train.config import StageConfig

_EPOCH_STRIDE = 1_000_003


@dataclass
class Batch:
    inputs: torch.Tensor  # [B, 3, S, S] float32 in [-1, 1], the condition images
    targets: torch.Tensor  # [B, 3, S, S] float32 in [-1, 1], the encoded targets
    instructions: list[str]
    tasks: list[str]

    @property
    def size(self) -> int:
        return int(self.inputs.shape[-1])

    def __len__(self) -> int:
        return len(self.tasks)


def random_crop_pair(inp: np.ndarray, tgt: np.ndarray, size: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop of input and target at the same offset (they are pixel-aligned)."""
    if inp.shape[:2] != tgt.shape[:2]:
        raise ValueError(f"input {inp.shape[:2]} and target {tgt.shape[:2]} differ in size: not aligned")
    h, w = inp.shape[:2]
    if h < size or w < size:
        raise ValueError(f"a {h}x{w} item is smaller than the {size}-px training crop: build the dataset "
                         f"at a size >= the stage's largest resolution")
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return inp[y:y + size, x:x + size], tgt[y:y + size, x:x + size]


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 images -> [B, 3, H, W] float32 in [-1, 1]."""
    arr = np.stack(images).astype(np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0


def collate_batch(next_item: Callable[[], Mapping[str, Any]], n: int, size: int,
                  rng: np.random.Generator) -> Batch:
    """``n`` items from ``next_item()``, each cropped to ``size`` at one offset for input and target."""
    inputs, targets, texts, tasks = [], [], [], []
    for _ in range(n):
        item = next_item()
        a, b = random_crop_pair(item["input"], item["target"], size, rng)
        inputs.append(a)
        targets.append(b)
        texts.append(item["instruction"])
        tasks.append(item["task"])
    return Batch(to_tensor(inputs), to_tensor(targets), texts, tasks)


def loss_weights_for(tasks: list[str], weights: Mapping[str, float]) -> torch.Tensor:
    """Per-item loss multipliers [B] (tasks not named in ``weights`` get 1)."""
    return torch.tensor([float(weights.get(t, 1.0)) for t in tasks], dtype=torch.float32)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def check_mixture(folder: str | Path, stage: StageConfig, tolerance: float = 0.02) -> dict[str, int]:
    """Check a dataset against what the stage expects; return its per-task counts.

    ``balanced``: every task has the same count (stage 1). ``weighted``: text-to-image is
    ``t2i_share`` of the items within ``tolerance`` (stage 2; the rest follows the recipe weights).
    The dataset's side must be at least the stage's largest resolution. Mismatches raise ValueError.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        if stage.mixture != "any":
            raise ValueError(f"stage {stage.name!r} expects a {stage.mixture} dataset but {folder} has no "
                             f"{MANIFEST}; build it with `pixwizard data build`")
        return {}
    counts = {t: int(n) for t, n in manifest.get("counts", {}).get("tasks", {}).items() if n}
    size = manifest.get("size")
    if size is not None and int(size) < max(stage.resolutions):
        raise ValueError(f"stage {stage.name!r} crops up to {max(stage.resolutions)} px but {folder} was built "
                         f"at {size} px")
    if stage.mixture == "balanced" and len(set(counts.values())) > 1:
        raise ValueError(f"stage {stage.name!r} expects every task balanced to one count, but {folder} has "
                         f"{min(counts.values())}..{max(counts.values())} per task; build it with a "
                         f"'balanced' recipe")
    if stage.mixture == "weighted":
        total = sum(counts.values())
        share = counts.get(T2I_TASK, 0) / max(total, 1)
        if abs(share - stage.t2i_share) > tolerance:
            raise ValueError(f"stage {stage.name!r} expects text-to-image at {stage.t2i_share:.2f} of the items, "
                             f"but {folder} has {share:.3f}; build it with a 'weighted' recipe")
    return counts


class BatchStream:
    """An endless, exactly resumable stream of :class:`Batch` from one dataset directory."""

    def __init__(self, folder: str | Path, batch_size: int, resolutions: tuple[int, ...], seed: int,
                 part: tuple[int, int] = (0, 1)):
        self.folder = Path(folder)
        n_shards = len(list_shards(self.folder))
        if n_shards < part[1]:
            raise ValueError(f"{self.folder} has {n_shards} shard(s), fewer than the {part[1]} ranks reading it; "
                             f"rebuild it with a smaller items_per_shard")
        self.batch_size = batch_size
        self.resolutions = tuple(resolutions)
        self.seed = seed
        self.part = part
        self.epoch = 0
        self.position = DataPosition()
        self.rng = np.random.default_rng([seed, part[0]])
        self._it: Iterator[dict[str, Any]] | None = None

    def _items(self) -> Iterator[dict[str, Any]]:
        return iter_dataset(self.folder, shuffle_seed=self.seed * _EPOCH_STRIDE + self.epoch,
                            start=self.position, part=self.part)

    def next_item(self) -> dict[str, Any]:
        """The next item of the shards (crossing into the next epoch when one ends)."""
        for _ in range(2):  # at most one epoch boundary per item
            if self._it is None:
                self._it = self._items()
            item = next(self._it, None)
            if item is not None:
                self.position = item["position"]
                return item
            self.epoch, self.position, self._it = self.epoch + 1, DataPosition(), None
        raise ValueError(f"no items in the shards of {self.folder} for part {self.part}")

    def next_batch(self) -> Batch:
        return collate_batch(self.next_item, self.batch_size, int(self.rng.choice(self.resolutions)), self.rng)

    def state_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "epoch": self.epoch, "position": self.position.to_dict(),
                "rng": self.rng.bit_generator.state, "part": list(self.part)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["part"]) != tuple(self.part):
            raise ValueError(f"data state is for part {tuple(state['part'])}, this stream reads {self.part}: "
                             f"resume with the same number of processes")
        self.epoch = int(state["epoch"])
        self.position = DataPosition.from_dict(state["position"])
        self.rng.bit_generator.state = state["rng"]
        self._it = None


class Prefetcher:
    """Decodes the next batches of a stream in a background thread (cv2 releases the GIL).

    :meth:`state_dict` is the stream state after the last batch handed out by :meth:`next_batch`,
    so resuming from it is exact whatever was prefetched.
    """

    def __init__(self, stream: BatchStream, depth: int = 2):
        self.stream = stream
        self._state = stream.state_dict()
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.stream.next_batch()
                self._queue.put((batch, self.stream.state_dict()))
        except Exception as e:  # handed to the consumer, re-raised there
            self._queue.put((e, None))

    def next_batch(self) -> Batch:
        batch, state = self._queue.get()
        if isinstance(batch, Exception):
            raise batch
        self._state = state
        return batch

    def state_dict(self) -> dict[str, Any]:
        return self._state

    def close(self) -> None:
        self._stop.set()
        if hasattr(self.stream, "close"):
            self.stream.close()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
