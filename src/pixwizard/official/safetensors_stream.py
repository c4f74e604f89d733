"""Write a safetensors file one tensor at a time.

``safetensors.torch.save_file`` needs every tensor in memory at once (and copies each into a
bytes object), so converting an 8 GB checkpoint with it takes more than 16 GB of RAM. The format
is a little-endian u64 header length, a JSON header (dtype, shape, byte offsets per tensor, and
``__metadata__`` strings) padded to 8 bytes, then the raw tensor bytes in header order
(https://github.com/huggingface/safetensors#format). Since every shape is known before any tensor
is built, the header is written first and each tensor is produced, written and freed in turn.
The file is written to a temporary name beside ``path`` and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype


def _nbytes(spec: TensorSpec) -> int:
    n = 1
    for s in spec.shape:
        n *= int(s)
    return n * torch.tensor([], dtype=spec.dtype).element_size()


def write_streaming(path: str | Path, specs: list[TensorSpec], produce: Callable[[TensorSpec], torch.Tensor],
                    metadata: dict[str, str], progress: Callable[[int, int], None] | None = None) -> int:
    """Write ``specs`` to ``path`` atomically, calling ``produce(spec)`` for each tensor in turn.

    Each produced tensor must have the spec's shape and dtype. Returns the file size in bytes."""
    path = Path(path)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names")
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    offset = 0
    for s in specs:
        if s.dtype not in DTYPES:
            raise ValueError(f"{s.name}: unsupported dtype {s.dtype}")
        n = _nbytes(s)
        header[s.name] = {"dtype": DTYPES[s.dtype], "shape": list(s.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for i, s in enumerate(specs):
                t = produce(s)
                if tuple(t.shape) != tuple(s.shape) or t.dtype != s.dtype:
                    raise ValueError(f"{s.name}: produced {tuple(t.shape)} {t.dtype}, declared {s.shape} {s.dtype}")
                f.write(t.detach().cpu().contiguous().view(torch.uint8).numpy().data)
                del t
                if progress is not None:
                    progress(i + 1, len(specs))
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 8 + len(blob) + offset


def total_bytes(specs: Iterable[TensorSpec]) -> int:
    return sum(_nbytes(s) for s in specs)
