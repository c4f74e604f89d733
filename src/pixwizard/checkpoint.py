"""Model checkpoints: safetensors with the resolved config in the metadata, written atomically.

Metadata keys: ``pixwizard_config`` (the full config as JSON), ``pixwizard_version``,
``trained_samples`` (samples seen in training; "0" for untrained weights), ``format`` ("pixwizard-model-1"),
and optionally ``notice``: one line the tools show users (e.g. that a checkpoint is an early one).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pixwizard import __version__
from pixwizard.config import PixWizardConfig

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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is a normal file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    cfg = PixWizardConfig.from_dict(json.loads(meta["pixwizard_config"]))
    extra = {k: v for k, v in meta.items() if k not in ("format", "pixwizard_config", "trained_samples")}
    return CheckpointInfo(cfg, int(meta.get("trained_samples", "0")), extra)


def load_model(path: str | Path, device="cpu"):
    """Build the model from the checkpoint's own config and load its weights (strict)."""
    from safetensors.torch import load_file

    from pixwizard.model.pixwizard import PixWizard

    info = read_info(path)
    model = PixWizard(info.config)
    state = load_file(str(path), device="cpu")
    expected = model.trainable_state_dict().keys()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match its config: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    model.load_state_dict(state, strict=False)
    return model.to(device).eval(), info
