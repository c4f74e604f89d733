"""The fine-tuning loop: LoRA or full, one process or several (DDP, FSDP2), exactly resumable.

It reuses the trainer's pieces: the per-item flow loss (``pixwizard.train.trainer.batch_losses``:
condition dropout, time sampling, noise, x-/velocity prediction), the LR schedule of a one-stage
``TrainConfig``, the EMA, the instruction cache and the checkpoint format
(``pixwizard.train.checkpoint``: weights, EMA, optimiser, RNG and data state, atomic folders).
In LoRA mode the checkpoint's weights are the adapter's tensors only; in full mode every trainable
weight. Stop + resume gives bitwise the weights of a straight run (tested).

Several processes (``torchrun --nproc-per-node N -m pixwizard.cli finetune ...``): every rank
draws the same global batch of crops and trains on its slice, gradients are averaged (DDP, or
FSDP2 with ``parallel="fsdp"``: each DiT block sharded, for a model that does not fit one device
with its optimiser), checkpoints are written collectively, and rank 0 exports the result from the
last checkpoint's full tensors.

Outputs in ``out``: ``finetune_config.json``, ``checkpoints/``, ``metrics.jsonl``, ``loss.png`` and
the result, ``<adapter name>.safetensors`` (LoRA adapter) or ``<adapter name>.model.safetensors``
(a full PixWizard model; load it with ``--checkpoint``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixwizard.checkpoint import load_model, save_model
from pixwizard.finetune import adapters
from pixwizard.finetune.config import FinetuneConfig
from pixwizard.finetune.pairs import Pair, PairStream
from pixwizard.finetune.tasks import register, task_metadata
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.runtime import resolve_device
from pixwizard.tasks.instructions import phrasings
from pixwizard.train import checkpoint as ckpt_io
from pixwizard.train.ema import EMA
from pixwizard.train.log import MetricsLogger, draw_loss_curve
from pixwizard.train.data import Batch
from pixwizard.train.parallel import (DistInfo, all_reduce_sum, any_rank, barrier, init_distributed,
                                      launched_world_size, resolve_strategy, shutdown, wrap_model)
from pixwizard.train.schedule import learning_rate
from pixwizard.train.text import InstructionCache
from pixwizard.train.trainer import _mix, _StopSignal, batch_losses

CONFIG_FILE = "finetune_config.json"


@dataclass
class FinetuneResult:
    step: int
    samples: int
    stopped_by: str  # done, max_steps, minutes, signal
    output: Path  # the adapter (LoRA) or the fine-tuned model (full)
    checkpoint: Path
    seconds: float  # wall clock of the training loop in this process


def output_path(cfg: FinetuneConfig, out: str | Path) -> Path:
    suffix = ".safetensors" if cfg.mode == "lora" else ".model.safetensors"
    return Path(out) / f"{cfg.adapter_name}{suffix}"


class Finetuner:
    def __init__(self, cfg: FinetuneConfig, base: str | Path, pairs: list[Pair], out: str | Path, *,
                 instructions: tuple[str, ...] = (), device: str | None = None, resume: bool = False):
        self.cfg, self.base, self.out, self.resume = cfg, Path(base), Path(out), resume
        self.tcfg = cfg.train_config()
        device = resolve_device(device)
        self.info = init_distributed(device) if launched_world_size() > 1 else DistInfo(0, 1, 0, device)
        self.device, world, rank = self.info.device, self.info.world_size, self.info.rank
        self.strategy = resolve_strategy(cfg.parallel, world)
        if cfg.batch_size % world:
            raise ValueError(f"batch size {cfg.batch_size} is not divisible by {world} processes")
        self.per_rank = cfg.batch_size // world
        register(cfg.task)
        model, self.base_info = load_model(self.base, device="cpu")
        self.mcfg = model.config
        multiple = self.mcfg.pixel_multiple
        if cfg.size % multiple:
            raise ValueError(f"size {cfg.size} is not a multiple of {multiple} (patch size x codec downsample)")
        if cfg.mode == "lora":
            model.requires_grad_(False)
            self.spec = adapters.LoraSpec(cfg.rank, cfg.alpha, cfg.dropout, adapters.target_regex(cfg.targets))
            model.train()
            with torch.random.fork_rng(devices=[]):  # LoRA A's random init from the run's seed only
                torch.manual_seed(_mix([cfg.seed], 3))
                adapters.inject(model, self.spec, cfg.adapter_name)
            self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        else:
            self.spec = None
            self.names = list(model.trainable_state_dict().keys())
        self.raw = model.to(self.device).train()
        self.model = wrap_model(self.raw, self.strategy, self.info)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.ema = EMA(model, cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.text = InstructionCache(build_text_encoder(self.mcfg.text, device=str(self.device), cache_size=0), 4096)
        self.codec = build_codec(self.mcfg.codec).to(self.device)
        self.gen = torch.Generator().manual_seed(_mix([cfg.seed, rank], 1))  # noise, times, dropout per rank
        self.dev_gen = torch.Generator(device=self.device).manual_seed(_mix([cfg.seed, rank], 2))
        self.generators = {"cpu": self.gen, "device": self.dev_gen}
        texts = instructions or tuple(phrasings(cfg.task.name, "train")) or tuple(phrasings(cfg.task.name, "all"))
        self.stream = PairStream(pairs, cfg.batch_size, cfg.size, cfg.seed, texts, cfg.task.name)
        self.pair_names = sorted(p.name for p in pairs)
        self.logger = MetricsLogger(self.out / "metrics.jsonl") if self.info.is_main else None
        self.step = self.samples = 0
        self.cpu_before = 0.0  # training CPU seconds of earlier processes of this run (resume)

    # ------------------------------------------------------------------ run directory
    def _run_record(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "base": str(self.base), "train_pairs": self.pair_names}

    def _prepare(self) -> None:
        path, latest = self.out / CONFIG_FILE, ckpt_io.latest_checkpoint(self.out)
        record = self._run_record()
        if not self.resume:
            if latest is not None:
                raise ValueError(f"{self.out} already holds checkpoints: pass --resume or choose a new --out")
            barrier()  # every rank has looked before rank 0 writes
            if self.info.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1, sort_keys=True))
            barrier()
            return
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} not found")
        saved = json.loads(path.read_text())
        if saved != json.loads(json.dumps(record)):
            diff = sorted(k for k in record if saved.get(k) != json.loads(json.dumps(record))[k])
            raise ValueError(f"cannot resume {self.out}: the run differs in {', '.join(diff)} "
                             f"(use the same data, base model and options)")
        if latest is None:
            return
        state, rank_state = ckpt_io.load_checkpoint(latest, model=self.raw, names=self.names, ema=self.ema,
                                                    optimizer=self.optimizer, strategy=self.strategy, info=self.info)
        self.step, self.samples = int(state["step"]), int(state["samples"])
        self.stream.load_state_dict(rank_state["stream"])
        ckpt_io.set_rng_state(rank_state["rng"], self.generators)
        if self.logger is not None:
            self.logger.truncate_after(self.step)
        if self.logger is not None and self.logger.path.is_file():  # CPU seconds keep counting across resumes
            rows = [json.loads(ln) for ln in self.logger.path.read_text().splitlines() if ln.strip()]
            self.cpu_before = float(rows[-1].get("cpu_s") or 0.0) if rows else 0.0

    def _save(self) -> Path:
        rank_state = {"stream": self.stream.state_dict(), "rng": ckpt_io.rng_state(self.generators)}
        return ckpt_io.save_checkpoint(self.out, step=self.step, samples=self.samples, model=self.raw,
                                       config=self.mcfg, names=self.names, ema=self.ema, optimizer=self.optimizer,
                                       strategy=self.strategy, rank_state=rank_state,
                                       meta={"stage": "finetune", "config": self.cfg.to_dict()}, info=self.info,
                                       keep_last=self.cfg.keep_last)

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        lr = learning_rate(self.tcfg, self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        batch = self.stream.next_batch()  # the global batch (every rank draws it), this rank's slice
        if self.info.world_size > 1:
            sl = slice(self.info.rank * self.per_rank, (self.info.rank + 1) * self.per_rank)
            batch = Batch(batch.inputs[sl], batch.targets[sl], batch.instructions[sl], batch.tasks[sl])
        losses = batch_losses(self.model, self.codec, self.text, batch, self.mcfg.flow, device=self.device,
                              precision=self.cfg.precision, generator=self.gen, device_generator=self.dev_gen)
        loss = losses.mean()
        loss.backward()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        self.optimizer.step()
        self.ema.update(self.raw)
        self.step += 1
        self.samples += self.cfg.batch_size
        return {"loss": float(loss.detach()), "lr": lr, "grad_norm": norm}

    # ------------------------------------------------------------------ loop
    def run(self, *, max_steps: int | None = None, minutes: float | None = None,
            handle_signals: bool = True) -> FinetuneResult:
        self._prepare()
        end = self.cfg.steps if max_steps is None else min(self.cfg.steps, max_steps)
        stopper = _StopSignal(handle_signals)
        started, cpu0 = time.monotonic(), time.process_time()
        deadline = None if minutes is None else started + 60.0 * minutes
        stopped_by, last = ("done" if end == self.cfg.steps else "max_steps"), None
        window: list[float] = []
        try:
            while self.step < end:
                out = self.train_step()
                window.append(out["loss"])
                if self.step % self.cfg.log_every == 0 or self.step == end:
                    mean = float(all_reduce_sum(torch.tensor([sum(window) / len(window)], dtype=torch.float64,
                                                             device=self._reduce_device))) / self.info.world_size
                    if self.logger is not None:
                        self.logger.log({"step": self.step, "samples": self.samples, "stage": "finetune",
                                         "loss": mean, "lr": out["lr"], "grad_norm": out["grad_norm"],
                                         "time": time.monotonic() - started,
                                         "cpu_s": self.cpu_before + time.process_time() - cpu0})
                    window = []
                reason = "signal" if stopper.flag else ("minutes" if deadline and time.monotonic() >= deadline else None)
                if self.info.world_size > 1 and any_rank(reason is not None, self.device) and reason is None:
                    reason = "signal"  # another rank was stopped: all stop at the same step
                if self.step % self.cfg.checkpoint_every == 0 or reason or self.step == end:
                    last = self._save()
                if reason:
                    stopped_by = reason
                    break
        finally:
            stopper.restore()
        if last is None or ckpt_io.read_state(last)["step"] != self.step:
            last = self._save()
        seconds = time.monotonic() - started
        if self.info.is_main and (self.out / "metrics.jsonl").is_file():
            try:
                draw_loss_curve(self.out / "metrics.jsonl", self.out / "loss.png")
            except ValueError:
                pass
        if self.info.world_size > 1:
            if self.info.is_main:
                self.export_from_checkpoint(last)
            barrier()
            return FinetuneResult(self.step, self.samples, stopped_by, output_path(self.cfg, self.out), last, seconds)
        return FinetuneResult(self.step, self.samples, stopped_by, self.export(), last, seconds)

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def export_from_checkpoint(self, ckpt: Path) -> Path:
        """Rank 0 of a multi-process run: build the model once more in this process, load the
        checkpoint's full (EMA) tensors and export them as a one-process run would."""
        model, _ = load_model(self.base, device="cpu")
        if self.spec is not None:
            model.requires_grad_(False)
            adapters.inject(model, self.spec, self.cfg.adapter_name)
        ckpt_io.load_weights_into(model, Path(ckpt) / ("ema.safetensors" if self.cfg.ema_decay > 0 else
                                                      "model.safetensors"), self.names)
        return self._write(model)

    def export(self) -> Path:
        """Write the (EMA) weights: the adapter file, or the full fine-tuned model."""
        if self.cfg.ema_decay > 0:
            self.ema.copy_to(self.raw)
        return self._write(self.raw)

    def _write(self, model: torch.nn.Module) -> Path:
        path = output_path(self.cfg, self.out)
        extra = {**task_metadata(self.cfg.task), "finetune_step": str(self.step),
                 "base_checkpoint": self.base.name}
        if self.cfg.mode == "lora":
            return adapters.save_adapter(model, self.cfg.adapter_name, self.spec, path,
                                         base_config_json=self.mcfg.to_json(),
                                         base_trained_samples=self.base_info.trained_samples, extra=extra)
        save_model(model, path, trained_samples=self.base_info.trained_samples + self.samples, extra=extra)
        return path


def finetune(cfg: FinetuneConfig, base: str | Path, pairs: list[Pair], out: str | Path, *,
             instructions: tuple[str, ...] = (), device: str | None = None, resume: bool = False,
             max_steps: int | None = None, minutes: float | None = None) -> FinetuneResult:
    try:
        return Finetuner(cfg, base, pairs, out, instructions=instructions, device=device,
                         resume=resume).run(max_steps=max_steps, minutes=minutes)
    finally:
        if launched_world_size() > 1:
            shutdown()
