"""Distributed training from outside the model: process groups, DDP and FSDP2 wrapping, helpers.

Launch with ``torchrun --nproc-per-node N -m pixwizard.train ...``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Backend: NCCL on CUDA, gloo
on CPU. Strategies:
- ``ddp``: ``DistributedDataParallel`` around the unchanged model (gradients all-reduced).
- ``fsdp``: FSDP2, ``torch.distributed.fsdp.fully_shard`` on every DiT block and then on the
  root (parameters become sharded DTensors; each rank holds 1/N of the weights, grads and
  optimiser state). Meant for base-2b; at debug size it also runs on CPU with gloo.
Nothing in the model code knows about any of this.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn as nn

Strategy = Literal["none", "ddp", "fsdp"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun describes (no-op for a single process). On CUDA each
    process takes GPU ``LOCAL_RANK``."""
    world = launched_world_size()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(rank, world, local, device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def resolve_strategy(requested: str, world_size: int) -> Strategy:
    if requested == "auto":
        return "ddp" if world_size > 1 else "none"
    if requested not in ("none", "ddp", "fsdp"):
        raise ValueError(f"unknown parallel strategy {requested!r}; use auto, none, ddp or fsdp")
    if requested == "ddp" and world_size == 1:
        return "none"  # DDP over one process is plain training
    return requested  # type: ignore[return-value]


def wrap_model(model: nn.Module, strategy: Strategy, info: DistInfo) -> nn.Module:
    """Apply the strategy; returns the module to call in training (``unwrap`` gives the model back)."""
    if strategy == "none":
        return model
    if not dist.is_initialized():
        raise ValueError(f"parallel strategy {strategy!r} needs a process group: launch with torchrun")
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    for block in model.dit.layers:
        fully_shard(block)
    fully_shard(model)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP2 shard (a collective: every rank must call it), else ``t``."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def assign_full(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy a whole tensor into ``dst``, sharding it first when ``dst`` is an FSDP2 DTensor."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    with torch.no_grad():
        if isinstance(dst, DTensor):
            dst.copy_(distribute_tensor(src.to(dst.device, dst.dtype), dst.device_mesh, dst.placements))
        else:
            dst.copy_(src.to(dst.device, dst.dtype))


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (keeps ranks agreeing on when to stop)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def replica_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the exact bytes of a state dict (names sorted): equal iff bitwise equal."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def gather_objects(obj: object) -> list[object]:
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
