"""Model checkpoints: safetensors with the resolved config in the metadata, written atomically.

Metadata keys: ``pixwizard_config`` (the full config as JSON), ``pixwizard_version``,
``trained_samples`` (samples seen in training; "0" for untrained weights), ``format`` ("pixwizard-model-1"),
and optionally ``notice``: one line the tools show users (e.g. that a checkpoint is an early one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pixwizard import __version__
from pixwizard.config import PixWizardConfig
from pixwizard.imageio import _atomic_write

FORMAT = "pixwizard-model-1"
DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "pixwizard-tiny.safetensors"


@dataclass
class CheckpointInfo:
    config: PixWizardConfig
    trained_samples: int
    extra: dict[str, str]


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        sort_header(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is a normal file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sort_header(path: str | Path) -> None:
    """Rewrite a safetensors file's JSON header with sorted keys, so that the same tensors and
    metadata always give the same bytes (safetensors writes the metadata map in hash order).

    The data section is untouched (its offsets are relative to it); the sorted header is padded
    with spaces to the old length, which the format allows. A longer header (not expected: same
    keys, same values) makes a copy."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(new) <= n:
            f.seek(8)
            f.write(new + b" " * (n - len(new)))
            return
    padded = new + b" " * (-len(new) % 8)
    copy = Path(f"{path}.sorted")
    try:
        with open(path, "rb") as src, open(copy, "wb") as dst:
            src.seek(8 + n)
            dst.write(len(padded).to_bytes(8, "little") + padded)
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(copy, path)
    finally:
        copy.unlink(missing_ok=True)


def tensors_digest(path: str | Path) -> str:
    """SHA-256 of a safetensors file's tensors (names, dtypes, shapes, bytes), not of its metadata:
    a new sampling default or notice in the header leaves it unchanged. Reads one tensor at a time."""
    import hashlib

    h = hashlib.sha256()
    with safe_open(str(path), framework="pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name)
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_metadata(src: str | Path, dst: str | Path, metadata: dict[str, str]) -> None:
    """Copy the safetensors file ``src`` to ``dst`` (atomically; ``dst`` may be ``src``) with its
    metadata replaced by ``metadata``: the data section is copied byte for byte, the header keeps
    the tensors' entries (their offsets are relative to the data section) and is written sorted."""
    src = Path(src)
    with open(src, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    new = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    new += b" " * (-len(new) % 8)

    def write(out) -> None:
        out.write(len(new).to_bytes(8, "little") + new)
        with open(src, "rb") as f:  # read before the rename: dst may be src
            f.seek(8 + n)
            shutil.copyfileobj(f, out, 1 << 20)

    _atomic_write(dst, write)


def save_model(model, path: str | Path, trained_samples: int = 0, extra: dict[str, str] | None = None) -> None:
    meta = {"format": FORMAT, "pixwizard_config": model.config.to_json(), "pixwizard_version": __version__,
            "trained_samples": str(int(trained_samples))}
    meta.update(extra or {})
    atomic_save_safetensors(model.trainable_state_dict(), path, meta)


def read_info(path: str | Path) -> CheckpointInfo:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({e})") from None
    if meta.get("format") != FORMAT or "pixwizard_config" not in meta:
        raise ValueError(f"{path} is not a PixWizard checkpoint (no pixwizard_config in its metadata)")
    try:
        raw = json.loads(meta["pixwizard_config"])
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON object was expected, got {type(raw).__name__}")
        cfg = PixWizardConfig.from_dict(raw)
        samples = int(meta.get("trained_samples", "0"))
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: broken checkpoint metadata ({_one_line(e)})") from None
    extra = {k: v for k, v in meta.items() if k not in ("format", "pixwizard_config", "trained_samples")}
    return CheckpointInfo(cfg, samples, extra)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a checkpoint whose tensors do not fit the model built from its config (names,
    shapes) or hold NaN/infinity (such weights give a black image without any error)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match its config: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for name, want in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(want.shape):
            raise ValueError(f"checkpoint {path} does not match its config: {name} has shape "
                             f"{tuple(got.shape)}, the model needs {tuple(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ValueError(f"checkpoint {path} holds NaN or infinite weights (in {name}); it cannot be used")


def load_model(path: str | Path, device="cpu"):
    """Build the model from the checkpoint's own config and load its weights (strict)."""
    from safetensors.torch import load_file

    from pixwizard.model.pixwizard import PixWizard

    info = read_info(path)
    try:
        model = PixWizard(info.config)
    except (TypeError, ValueError, AttributeError, RuntimeError) as e:  # e.g. a string where a number belongs
        raise ValueError(f"checkpoint {path}: its config does not build a model ({_one_line(e)})") from None
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors' own error types for damaged data
        raise ValueError(f"checkpoint {path} is damaged ({_one_line(e)})") from None
    check_state(state, model.trainable_state_dict(), path)
    model.load_state_dict(state, strict=False)
    return model.to(device).eval(), info
