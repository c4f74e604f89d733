"""Training checkpoints (exact resume) and the export of the EMA weights as a model checkpoint.

One checkpoint is a folder ``<run>/checkpoints/step-<9 digits>/``::

    model.safetensors   trained weights (full tensors, pixwizard model metadata)
    ema.safetensors     EMA weights: itself a valid pixwizard model checkpoint (load_model reads it)
    optim.pt            optimiser state (torch.save; FSDP2: the full, unsharded state keyed by name)
    rank-00000.pt ...   per rank: data-stream state and RNG states (python, numpy, torch CPU/CUDA,
                        and the trainer's own generators)
    state.json          step, samples seen, stage, EMA counters, strategy, the TrainConfig

It is written into ``step-<n>.tmp`` and renamed when complete, so a folder without the suffix is
always whole; the newest ``keep_last`` folders (at least two) are kept, and with ``keep_every`` N also
every folder whose step is a multiple of N (to score a run's EMA along the way; such a folder holds a
``kept`` file and stays when the run resumes without the option): a resume whose newest
checkpoint has a damaged file (a truncated ``optim.pt``, a refused pickle) falls back to the one
before it. Every rank calls :func:`save_checkpoint`
(FSDP2 gathers are collectives); rank 0 writes the shared files, each rank its own rank file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file

from pixwizard.checkpoint import save_model
from pixwizard.config import PixWizardConfig
from pixwizard.train.ema import EMA
from pixwizard.train.parallel import DistInfo, assign_full, barrier, full_tensor

CHECKPOINTS = "checkpoints"
PREFIX = "step-"
TMP = ".tmp"
KEPT = "kept"  # marker file of a checkpoint kept by keep_every


@dataclass
class WeightsView:
    """What :func:`pixwizard.checkpoint.save_model` needs (config + trainable state), without a model."""

    config: PixWizardConfig
    state: dict[str, torch.Tensor]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return self.state


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{PREFIX}{step:09d}"


def checkpoint_step(ckpt: str | Path) -> int:
    """The optimiser step a checkpoint folder was written at (from its name)."""
    return int(Path(ckpt).name[len(PREFIX):])


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir() and not p.name.endswith(TMP)
                  and (p / "state.json").is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


# ----------------------------------------------------------------------------- RNG


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Global RNG states of python, numpy and torch (CPU and CUDA) plus named generators."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"], "key": np_state["state"]["key"].tolist(),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    random.setstate(state["python"])
    s = state["numpy"]
    np.random.set_state({"bit_generator": s["bit_generator"], "has_gauss": s["has_gauss"], "gauss": s["gauss"],
                         "state": {"key": np.asarray(s["key"], dtype=np.uint32), "pos": s["pos"]}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def _torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + TMP)
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- save / load


def _full_model_state(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {n: full_tensor(sd[n]).detach().cpu() for n in names}


def _optim_state(model: nn.Module, optimizer: torch.optim.Optimizer, strategy: str) -> dict[str, Any]:
    if strategy != "fsdp":
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_checkpoint(run_dir: str | Path, *, step: int, samples: int, model: nn.Module, config: PixWizardConfig,
                    names: list[str], ema: EMA, optimizer: torch.optim.Optimizer, strategy: str,
                    rank_state: dict[str, Any], meta: dict[str, Any], info: DistInfo, keep_last: int,
                    keep_every: int = 0) -> Path:
    """Write one checkpoint (collective: call on every rank). ``model`` is the raw (unwrapped)
    module, ``names`` the trainable state keys; ``meta`` goes into state.json. Older checkpoints
    beyond the newest ``keep_last`` are removed unless kept: written at a multiple of ``keep_every`` (> 0)."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + TMP)
    weights = _full_model_state(model, names)
    ema_weights = dict(weights)
    ema_weights.update({n: full_tensor(t).detach().cpu() for n, t in ema.shadow.items()})
    optim = _optim_state(model, optimizer, strategy)
    if info.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    barrier()
    _torch_save(rank_state, tmp / f"rank-{info.rank:05d}.pt")
    if info.is_main:
        extra = {"train_step": str(step)}
        save_model(WeightsView(config, weights), tmp / "model.safetensors", trained_samples=samples, extra=extra)
        save_model(WeightsView(config, ema_weights), tmp / "ema.safetensors", trained_samples=samples,
                   extra={**extra, "ema_decay": str(ema.decay)})
        _torch_save(optim, tmp / "optim.pt")
    barrier()
    if info.is_main:
        state = {"step": step, "samples": samples, "ema": ema.state_dict(), "strategy": strategy,
                 "world_size": info.world_size, **meta}
        (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
        if keep_every > 0 and step % keep_every == 0:
            (tmp / KEPT).write_text(f"kept: step {step} is a multiple of keep_every {keep_every}\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(run_dir)[:-max(keep_last, 2)]:  # the previous one is the fallback
            if not (old / KEPT).is_file():
                shutil.rmtree(old)
    barrier()
    return final


def read_state(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / "state.json"
    if not path.is_file():
        raise FileNotFoundError(f"{ckpt} is not a complete training checkpoint (no state.json)")
    return json.loads(path.read_text())


def load_weights_into(model: nn.Module, path: str | Path, names: list[str],
                      state: dict[str, torch.Tensor] | None = None, grown: tuple[str, ...] = ()) -> list[str]:
    """Load a pixwizard model checkpoint's tensors into ``model`` (plain or FSDP2), strictly by
    ``names`` (``state``: the file's tensors when already read). Names starting with a prefix in
    ``grown`` (parts added to the model that start as the identity, e.g. ``refine.``) may be absent
    from the file: they keep their initialisation. Returns those names."""
    state = load_file(str(path), device="cpu") if state is None else state
    kept = sorted(n for n in names if n not in state and n.startswith(grown)) if grown else []
    names = [n for n in names if n not in kept]
    missing = sorted(set(names) - set(state))
    unexpected = sorted(set(state) - set(names))
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    own = model.state_dict()
    for n in names:
        assign_full(own[n], state[n])
    return kept


class CheckpointError(ValueError):
    """A training checkpoint whose files cannot be read (truncated, damaged, or holding pickled code)."""


def _read(path: Path, reader):
    try:
        return reader(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except Exception as e:  # torch/safetensors/pickle raise many types for a damaged or foreign file
        text = " ".join(str(e).split())
        if "weights_only" in text or "Unsupported global" in text or "Unpickl" in type(e).__name__:
            text = "it holds pickled objects other than tensors and was refused (not loaded)"
        raise CheckpointError(f"{path} cannot be read: {text[:300] or type(e).__name__}") from None


def load_checkpoint(ckpt: str | Path, *, model: nn.Module, names: list[str], ema: EMA,
                    optimizer: torch.optim.Optimizer, strategy: str, info: DistInfo) -> tuple[dict, dict]:
    """Restore model, EMA and optimiser in place; returns (state.json, this rank's rank state).

    Every file is read before anything is changed: a checkpoint with a truncated or refused file
    raises :class:`CheckpointError` and leaves the model and optimiser as they were (the caller can
    fall back to the previous checkpoint)."""
    ckpt = Path(ckpt)
    state = _read(ckpt, read_state)
    if state["world_size"] != info.world_size or state["strategy"] != strategy:
        raise ValueError(f"{ckpt} was written by {state['world_size']} process(es) with {state['strategy']!r}; "
                         f"resume with the same launch ({info.world_size} with {strategy!r} now)")
    weights = _read(ckpt / "model.safetensors", lambda p: load_file(str(p), device="cpu"))
    ema_file = _read(ckpt / "ema.safetensors", lambda p: load_file(str(p), device="cpu"))
    optim = _read(ckpt / "optim.pt", lambda p: torch.load(p, map_location="cpu", weights_only=True))
    rank_file = ckpt / f"rank-{info.rank:05d}.pt"
    rank_state = _read(rank_file, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    lacking = sorted((set(names) - set(weights)) | (set(ema.names) - set(ema_file)))
    if lacking:
        raise CheckpointError(f"{ckpt} lacks tensors: {lacking[:5]}")
    load_weights_into(model, ckpt / "model.safetensors", names, state=weights)
    ema.updates = int(state["ema"]["updates"])
    for n in ema.names:
        assign_full(ema.shadow[n], ema_file[n])
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, optim_state_dict=optim,
                                 options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(optim)
    return state, rank_state


def export(ckpt: str | Path, out: str | Path) -> Path:
    """Write a checkpoint's EMA weights as a pixwizard model checkpoint (``trained_samples`` kept)."""
    from pixwizard.checkpoint import read_info

    src = Path(ckpt) / "ema.safetensors"
    info = read_info(src)
    save_model(WeightsView(info.config, load_file(str(src), device="cpu")), out,
               trained_samples=info.trained_samples, extra={"train_step": info.extra.get("train_step", "")})
    return Path(out)
