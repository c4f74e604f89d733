"""WebDataset shards: atomic writing, a sidecar per shard, and a resumable reader.

On-disk layout of a built dataset directory::

    manifest.json            counts per task/domain, shard list, recipe, skipped sources, versions
    shard-000000.tar         WebDataset tar (entries sorted per sample, mtime 0: byte-reproducible)
    shard-000000.json        sidecar written after the tar is in place: proof the shard is complete

One sample (``__key__`` = the item index, 9 digits) holds:
- ``input.png``  HxWx3 uint8 RGB, the condition image
- ``target.png`` HxWx3 uint8 RGB, the encoded target (same HxW as the input, pixel-aligned)
- ``json``       {task, domain, source, instruction, slots, meta, seed, index, split}
- ``<name>.npy`` typed ground truth from the Sample (mask bool HxW, boxes float32 Nx4 xyxy px,
  depth float32 HxW metres, normals float32 HxWx3 camera frame, labels/instances int32 HxW)

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed with
``os.replace``, so a reader never sees a partial ``shard-*.tar``/``*.json``.

Writing uses ``tarfile`` directly, in exactly the layout of ``webdataset.TarWriter`` (entries
``<key>.<ext>`` sorted by extension, ustar): importing webdataset imports torch (webdataset.compat),
which costs seconds in every spawned build worker that otherwise never needs torch. Reading uses
webdataset (imported lazily), as the trainer does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import cv2
import numpy as np

SHARD_PATTERN = "shard-{:06d}.tar"
MANIFEST = "manifest.json"
TMP_MARK = ".tmp-"
KEY_DIGITS = 9
IMAGE_ENTRIES = ("input.png", "target.png")


def shard_name(index: int) -> str:
    return SHARD_PATTERN.format(index)


def sidecar_path(shard: Path) -> Path:
    return shard.with_suffix(".json")


def item_key(index: int) -> str:
    return f"{index:0{KEY_DIGITS}d}"


# ----------------------------------------------------------------------------- atomic files


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + fsync + rename (never a partial file)."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def remove_stray_temps(folder: Path) -> list[Path]:
    """Delete leftovers of killed writers (``*.tmp-<pid>``) in ``folder``; returns what was removed."""
    removed = []
    for p in sorted(Path(folder).glob(f"*{TMP_MARK}*")):
        if p.is_file():
            p.unlink()
            removed.append(p)
    return removed


# ----------------------------------------------------------------------------- encoding


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of an HxWx3 uint8 RGB image (deterministic bytes)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    raise TypeError(f"metadata value of type {type(o).__name__} is not JSON-serialisable")


def json_bytes(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, default=_json_default, ensure_ascii=False).encode("utf-8")


def encode_sample(key: str, input_image: np.ndarray, target: np.ndarray, record: Mapping[str, Any],
                  arrays: Mapping[str, np.ndarray]) -> dict[str, bytes | str]:
    """One WebDataset sample (all values bytes): images as PNG, record as JSON, arrays as .npy."""
    if "." in key:
        raise ValueError(f"sample key {key!r} must not contain '.'")
    sample: dict[str, bytes | str] = {
        "__key__": key,
        "input.png": png_bytes(input_image),
        "target.png": png_bytes(target),
        "json": json_bytes(record),
    }
    for name, arr in arrays.items():
        if not name.isidentifier() or not name.islower():
            raise ValueError(f"truth entry name {name!r} must be a lowercase identifier")
        sample[f"{name}.npy"] = npy_bytes(np.asarray(arr))
    return sample


# ----------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ShardFile:
    """A finished shard on disk."""

    path: Path
    items: int
    bytes: int
    sha256: str


def _add_sample(tar: tarfile.TarFile, sample: Mapping[str, bytes | str]) -> None:
    """Append one sample as ``<key>.<ext>`` entries (sorted, mtime 0, fixed owner: reproducible)."""
    key = sample["__key__"]
    if not isinstance(key, str) or not key:
        raise ValueError("a sample needs a non-empty string __key__")
    for ext in sorted(k for k in sample if not k.startswith("_")):
        value = sample[ext]
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size, info.mtime, info.mode = len(data), 0, 0o444
        info.uname = info.gname = "pixwizard"
        tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: Iterable[Mapping[str, bytes | str]]) -> ShardFile:
    """Write samples to ``path`` atomically (temp file in the same folder, fsync, rename).

    If ``samples`` raises, the temp file is removed and ``path`` is left untouched (absent).
    Entries carry mtime 0 and fixed owner fields, so equal samples give byte-identical tars.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    n = 0
    try:
        with open(tmp, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for s in samples:
                    _add_sample(tar, s)
                    n += 1
            f.flush()
            os.fsync(f.fileno())
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        size = tmp.stat().st_size
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ShardFile(path=path, items=n, bytes=size, sha256=digest)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class DataPosition:
    """Where a reader stands: ``shard`` indexes the (possibly shuffled) shard order of this
    reader's part, ``item`` the (possibly shuffled) item order within that shard. A position is
    only meaningful for the same directory, ``shuffle_seed`` and ``part``."""

    shard: int = 0
    item: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"shard": self.shard, "item": self.item}

    @classmethod
    def from_dict(cls, d: Mapping[str, int]) -> "DataPosition":
        return cls(shard=int(d["shard"]), item=int(d["item"]))


def list_shards(folder: Path) -> list[Path]:
    """Complete shards of a dataset directory, in index order (a shard without sidecar is not listed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset directory {folder} does not exist")
    shards = [p for p in sorted(folder.glob("shard-*.tar")) if sidecar_path(p).is_file()]
    if not shards:
        raise FileNotFoundError(f"no complete shards (shard-*.tar with sidecar) in {folder}")
    return shards


def decode_image(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("undecodable PNG entry")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_sample(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decode a raw WebDataset sample into ``{key, input, target, truth, **record}``."""
    record = json.loads(raw["json"])
    truth = {}
    for name, value in raw.items():
        if name.endswith(".npy"):
            truth[name[: -len(".npy")]] = np.load(io.BytesIO(value), allow_pickle=False)
    out = dict(record)
    out.update(key=raw["__key__"], input=decode_image(raw["input.png"]),
               target=decode_image(raw["target.png"]), truth=truth)
    return out


def read_shard_raw(path: Path) -> list[dict[str, Any]]:
    """All samples of one shard as raw dicts (entry name -> bytes), in stored order, via webdataset."""
    import webdataset as wds

    pipeline = wds.DataPipeline(wds.SimpleShardList([str(path)]), wds.tarfile_to_samples())
    return [{k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"} for s in pipeline]


def iter_dataset(folder: Path, shuffle_seed: int | None = None, start: DataPosition | None = None,
                 part: tuple[int, int] = (0, 1)) -> Iterator[dict[str, Any]]:
    """Yield decoded samples of a built dataset, one pass.

    ``shuffle_seed``: None = shards and items in index order; an int = a seeded permutation of the
    shards and, within each shard, of its items (use a new seed per epoch, e.g. ``seed + epoch``).
    ``part=(rank, world)``: this reader takes shards ``rank, rank + world, ...`` (before shuffling).
    ``start``: resume from a ``DataPosition`` (skipped items are not decoded).
    Each yielded dict has ``input``/``target`` (HxWx3 uint8 RGB), ``truth`` (name -> array), the
    JSON record fields (task, instruction, slots, meta, seed, split, ...) and ``position``: the
    DataPosition of the *next* item, to store in a checkpoint.
    """
    rank, world = part
    if not 0 <= rank < world:
        raise ValueError(f"part must be (rank, world) with 0 <= rank < world, got {part}")
    shards = list_shards(folder)[rank::world]
    if shuffle_seed is not None:
        order = np.random.default_rng([shuffle_seed, 0]).permutation(len(shards))
        shards = [shards[i] for i in order]
    start = start or DataPosition()
    for si in range(start.shard, len(shards)):
        raw = read_shard_raw(shards[si])
        order = np.arange(len(raw))
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, 1, si]).permutation(len(raw))
        first = start.item if si == start.shard else 0
        for j in range(first, len(raw)):
            sample = decode_sample(raw[int(order[j])])
            nxt = DataPosition(si, j + 1) if j + 1 < len(raw) else DataPosition(si + 1, 0)
            sample["position"] = nxt
            yield sample
