"""The two-stage trainer: one loop for one CPU, torchrun DDP and FSDP2, exactly resumable.

One optimiser step (global batch ``B`` = world x per-rank batch):
1. the rank's batch (one crop side, aligned crops) -> codec latents ``x1`` (target), ``cond`` (input);
2. condition dropout (FlowConfig: text only / image only / both, 5% each): the instruction becomes
   "" and the condition (latent and the semantic encoder's pixels) becomes zeros;
3. ``t`` from the configured time sampling, noise ``x0``, ``x_t = t x1 + (1 - t) x0``;
4. per-item flow loss (x- or velocity prediction, velocity loss; optionally a weighted mean that
   counts the positions the task changes ``1 + change_weight`` times) x per-task loss weights, mean
   over the batch; gradient accumulation over micro-batches; clip at ``grad_clip``; AdamW; EMA.

Randomness: model init from ``seed``; per rank one CPU generator (times, noise, dropout) and one
device generator (the dynamic sampler's Gumbel noise) seeded from ``(seed, rank)``; the data
stream's own numpy generator. All of them, the global RNGs, the data position, model, EMA and
optimiser go into every checkpoint, so stop + resume gives bitwise the weights of a straight run.
Stopping: ``max_steps``, ``minutes``, or SIGTERM/SIGINT; in each case a checkpoint is written and
the EMA weights are exported to ``<out>/model.safetensors`` before returning.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from pixwizard.config import FlowConfig, PixWizardConfig
from pixwizard.flow import apply_dropout, change_weights, draw_dropout, flow_loss, interpolate, sample_training_times
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.model.pixwizard import GROWN_PARTS, PixWizard
from pixwizard.runtime import autocast, resolve_device
from pixwizard.tasks import task_ids
from pixwizard.train import checkpoint as ckpt_io
from pixwizard.train.config import TrainConfig
from pixwizard.train.data import Batch, BatchStream, Prefetcher, check_mixture, loss_weights_for
from pixwizard.train.ema import EMA
from pixwizard.train.online import MixedStream, OnlineSource
from pixwizard.train.log import MetricsLogger, draw_loss_curve
from pixwizard.train.progress import TrainProgress
from pixwizard.train.parallel import (DistInfo, all_reduce_sum, any_rank, gather_objects, init_distributed,
                                      replica_fingerprint, resolve_strategy, wrap_model)
from pixwizard.train.schedule import learning_rate
from pixwizard.train.text import InstructionCache

CONFIG_FILE = "train_config.json"
EXPORT_FILE = "model.safetensors"
OTHER_TASK = "other"


@dataclass
class RunOptions:
    """What a launch adds to a TrainConfig."""

    out: str | Path  # run directory (config, checkpoints, metrics, export)
    data: list[str] = field(default_factory=list)  # one dataset dir for all stages, or one per stage
    resume: bool = False  # continue from the newest checkpoint in ``out``
    max_steps: int | None = None  # stop after this global step (the LR schedule is unchanged)
    minutes: float | None = None  # wall-clock budget; a checkpoint is written when it runs out
    init: str | None = None  # model checkpoint for the first stage (overrides stage 1's ``init``)
    device: str | None = None  # None = CUDA when present, else CPU
    handle_signals: bool = True  # SIGTERM/SIGINT save a checkpoint and stop
    online_workers: int = 1  # processes making online photo items ahead (0 = in the training process)
    progress: bool | None = None  # progress bar: None = when stderr is a terminal (main process only)
    tensorboard: str | Path | None = None  # also log the metrics lines as TensorBoard scalars here
    compile: bool = False  # torch.compile the model (measured on CPU: 1.6-1.7x samples/s after a ~100 s compile)
    keep_every: int = 0  # also keep every checkpoint whose step is a multiple of this (0: only the newest keep_last)


@dataclass
class TrainResult:
    step: int
    samples: int
    finished: bool  # the whole plan ran
    stopped_by: str  # "done", "max_steps", "minutes" or "signal"
    checkpoint: Path | None
    export: Path | None
    fingerprints: list[str]  # DDP: a hash of each rank's final weights (all equal when in sync)


def build_model(cfg: PixWizardConfig, seed: int) -> PixWizard:
    """The model initialised from ``seed`` only (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PixWizard(cfg)


def batch_losses(model: nn.Module, codec: nn.Module, text: InstructionCache, batch: Batch, flow: FlowConfig, *,
                 device: torch.device, precision: str, generator: torch.Generator,
                 device_generator: torch.Generator | None, change_weight: float = 0.0,
                 change_threshold: float = 0.1, change_tasks: tuple[str, ...] = ()) -> torch.Tensor:
    """Per-item flow loss [b] of one batch (steps 1-4 of the module docstring, before weighting).

    ``generator`` (CPU) draws dropout, times and noise in that order; ``device_generator`` the
    dynamic sampler's Gumbel noise. Noise is drawn on the CPU and moved, so a run is the same
    function of its seeds on every device type. ``change_weight`` > 0 weights the positions where the
    target differs from the input (:func:`~pixwizard.flow.loss.change_weights`), in the items of
    ``change_tasks`` only when that is given."""
    n = len(batch)
    inputs, targets = batch.inputs.to(device), batch.targets.to(device)
    with torch.no_grad():
        x1 = codec.encode(targets)
        cond = codec.encode(inputs)
    drop_text, drop_image = draw_dropout(n, flow, generator)
    texts, cond = apply_dropout(batch.instructions, cond, drop_text, drop_image)
    pixels = inputs * (~drop_image).to(inputs.dtype).view(-1, 1, 1, 1).to(device)
    encoded = text.encode(texts).to(device)
    t = sample_training_times(n, flow, generator=generator).to(device)
    x0 = torch.randn(tuple(x1.shape), generator=generator).to(device)
    x_t = interpolate(x0, x1, t)
    with autocast(device, precision):
        out = model(x_t, t, cond, encoded, cond_pixels=pixels, generator=device_generator)
    weights = None
    if change_weight > 0:
        per_item = torch.tensor([change_weight if not change_tasks or task in change_tasks else 0.0
                                 for task in batch.tasks])
        if bool((per_item > 0).any()):  # a batch without those tasks keeps the plain mean exactly
            weights = change_weights(inputs, targets, tuple(x1.shape[-2:]), per_item.to(device), change_threshold)
    return flow_loss(out, x0, x1, x_t, t, flow.prediction, flow.t_eps, mask=weights)


class _StopSignal:
    """SIGTERM/SIGINT set a flag (the loop saves and stops) instead of killing the process."""

    def __init__(self, enabled: bool):
        self.flag = False
        self._old: dict[int, Any] = {}
        if enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self._old[sig] = signal.signal(sig, self._set)
                except ValueError:  # not the main thread: signals stay as they are
                    break

    def _set(self, signum, frame) -> None:
        self.flag = True

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: TrainConfig, opts: RunOptions):
        if opts.keep_every < 0:
            raise ValueError(f"--keep-every must be >= 0, got {opts.keep_every}")
        if opts.keep_every % cfg.checkpoint_every:
            raise ValueError(f"--keep-every {opts.keep_every} would keep few or no checkpoints: they are written every "
                             f"{cfg.checkpoint_every} steps, so pick a multiple of {cfg.checkpoint_every}")
        self.cfg, self.opts = cfg, opts
        self.out = Path(opts.out)
        device = resolve_device(opts.device)
        self.info: DistInfo = init_distributed(device)
        self.device = self.info.device
        self.strategy = resolve_strategy(cfg.parallel, self.info.world_size)
        world = self.info.world_size
        if cfg.batch_size % world:
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {world} processes")
        self.per_rank = cfg.batch_size // world
        self.micro = cfg.micro_batch or self.per_rank
        if self.per_rank % self.micro:
            raise ValueError(f"per-process batch {self.per_rank} is not a multiple of micro_batch {self.micro}")
        self.accum = self.per_rank // self.micro
        self.mcfg = cfg.model_config()
        multiple = self.mcfg.pixel_multiple
        for s in cfg.stages:
            bad = [r for r in s.resolutions if r % multiple]
            if bad:
                raise ValueError(f"stage {s.name!r}: resolutions {bad} are not multiples of {multiple} "
                                 f"(patch size x codec downsample of {cfg.model!r})")
        self.data_dirs = self._data_dirs()

        self.raw = build_model(self.mcfg, cfg.seed)
        self.names = list(self.raw.trainable_state_dict().keys())
        self.raw.to(self.device).train()
        self.model = wrap_model(self.raw, self.strategy, self.info)
        if opts.compile:  # the text length varies per batch: one recompile, then a dynamic-length graph
            self.model = torch.compile(self.model)
        self.ema = EMA(self.raw, cfg.ema_decay, cfg.ema_warmup)
        params = [p for p in self.raw.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = torch.optim.AdamW(params, lr=cfg.stages[0].lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.text = InstructionCache(build_text_encoder(self.mcfg.text, device=str(self.device), cache_size=0),
                                     cfg.text_cache_size)
        self.codec = build_codec(self.mcfg.codec).to(self.device)
        seed = [cfg.seed, self.info.rank]
        self.gen = torch.Generator().manual_seed(_mix(seed, 1))
        self.dev_gen = torch.Generator(device=self.device).manual_seed(_mix(seed, 2))
        self.generators = {"cpu": self.gen, "device": self.dev_gen}
        self.task_index = {t: i for i, t in enumerate((*task_ids(), OTHER_TASK))}
        self.logger = MetricsLogger(self.out / "metrics.jsonl", enabled=self.info.is_main)
        self.progress = TrainProgress(0, enabled=False)  # run() opens the real one
        self.step = 0
        self.samples = 0
        self.stream: BatchStream | Prefetcher | None = None
        self.stream_stage = -1

    # ------------------------------------------------------------------ setup
    def _data_dirs(self) -> list[str]:
        stages, given = self.cfg.stages, list(self.opts.data)
        if len(given) == len(stages):
            dirs = given
        elif len(given) == 1:
            dirs = given * len(stages)
        elif not given:
            dirs = [s.data for s in stages]
        else:
            raise ValueError(f"--data takes one directory or one per stage ({len(stages)}), got {len(given)}")
        missing = [s.name for s, d in zip(stages, dirs) if not d]
        if missing:
            raise ValueError(f"no dataset for stage(s) {', '.join(missing)}: pass --data DIR")
        for s, d in zip(stages, dirs):
            check_mixture(d, s)
        return [str(d) for d in dirs]

    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Write or check ``train_config.json``; load the newest checkpoint when resuming."""
        cfg_path = self.out / CONFIG_FILE
        latest = ckpt_io.latest_checkpoint(self.out)
        if not self.opts.resume:
            if latest is not None:
                raise ValueError(f"{self.out} already holds checkpoints: pass --resume or choose a new --out")
            if self.info.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                cfg_path.write_text(json.dumps(self.cfg.to_dict(), indent=1, sort_keys=True))
            return None
        if not cfg_path.is_file():
            raise FileNotFoundError(f"cannot resume: {cfg_path} not found")
        try:  # options added to TrainConfig since the run began read as their defaults
            saved = json.loads(TrainConfig.from_dict(json.loads(cfg_path.read_text())).to_json())
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot resume {self.out}: {cfg_path.name} is not a training config this version "
                             f"reads ({e})") from None
        now = json.loads(self.cfg.to_json())
        if saved != now:
            diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ValueError(f"cannot resume {self.out}: the training config differs in {', '.join(diff)} "
                             f"(use the same --preset and options)")
        if latest is None:
            return None  # killed before its first checkpoint: start over
        state, rank_state = self._load_newest_readable()
        self.step, self.samples = int(state["step"]), int(state["samples"])
        ckpt_io.set_rng_state(rank_state["rng"], self.generators)
        self.logger.truncate_after(self.step)
        return rank_state

    def _load_newest_readable(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The newest checkpoint whose files all read; a damaged one (truncated optimiser file,
        refused pickle) is reported on one line and the previous one is used."""
        problems = []
        for ckpt in reversed(ckpt_io.list_checkpoints(self.out)):
            try:
                return ckpt_io.load_checkpoint(ckpt, model=self.raw, names=self.names, ema=self.ema,
                                               optimizer=self.optimizer, strategy=self.strategy, info=self.info)
            except ckpt_io.CheckpointError as e:
                problems.append(str(e))
                if self.info.is_main:
                    print(f"warning: skipping checkpoint {ckpt.name}: {e}", file=sys.stderr, flush=True)
        raise ValueError(f"cannot resume {self.out}: no readable checkpoint ({problems[0]})")

    def _open_stage(self, index: int, local: int, saved: dict[str, Any] | None) -> None:
        if isinstance(self.stream, (Prefetcher, MixedStream)):
            self.stream.close()
        stage = self.cfg.stages[index]
        stream = BatchStream(self.data_dirs[index], self.per_rank, stage.resolutions, _mix([self.cfg.seed], index),
                             part=(self.info.rank, self.info.world_size))
        if self.cfg.online_recipe:
            online = OnlineSource(self.cfg.online_recipe, workers=self.opts.online_workers, part=self.info.rank)
            stream = MixedStream(stream, online, self.cfg.online_share)
        if saved is not None and saved["stage"] == index:
            stream.load_state_dict(saved["stream"])
        self.stream = Prefetcher(stream) if self.device.type == "cuda" else stream
        self.stream_stage = index
        init = self.opts.init if index == 0 and self.opts.init else stage.init
        if local == 0 and init:
            kept = ckpt_io.load_weights_into(self.raw, init, self.names, grown=GROWN_PARTS)
            if kept:
                print(f"{init}: grown parts start at their initialisation ({len(kept)} tensors: "
                      f"{', '.join(sorted({n.split('.')[0] for n in kept}))})", flush=True)
            self.ema.start_from(self.raw)  # a model file is an EMA export: continue it, not restart it

    # ------------------------------------------------------------------ one step
    def _micro_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        losses = batch_losses(self.model, self.codec, self.text, batch, self.mcfg.flow, device=self.device,
                              precision=self.cfg.precision, generator=self.gen, device_generator=self.dev_gen,
                              change_weight=self.cfg.change_weight, change_threshold=self.cfg.change_threshold,
                              change_tasks=tuple(self.cfg.change_tasks))
        return losses, loss_weights_for(batch.tasks, self.cfg.loss_weights).to(self.device)

    def _sync_context(self, last: bool):
        if self.strategy == "ddp" and not last:
            return self.model.no_sync()
        if self.strategy == "fsdp":
            self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def train_step(self, batch: Batch) -> dict[str, Any]:
        lr = learning_rate(self.cfg, self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        task_sum = torch.zeros(len(self.task_index), dtype=torch.float64)
        task_count = torch.zeros(len(self.task_index), dtype=torch.float64)
        total = 0.0
        for k in range(self.accum):
            sl = slice(k * self.micro, (k + 1) * self.micro)
            mb = Batch(batch.inputs[sl], batch.targets[sl], batch.instructions[sl], batch.tasks[sl])
            with self._sync_context(k == self.accum - 1):
                losses, weights = self._micro_loss(mb)
                loss = (losses * weights).sum() / self.per_rank
                loss.backward()
            total += float(loss.detach())
            for task, value in zip(mb.tasks, losses.detach().cpu().tolist()):
                i = self.task_index.get(task, self.task_index[OTHER_TASK])
                task_sum[i] += value
                task_count[i] += 1
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
        self.optimizer.step()
        self.ema.update(self.raw)
        self.step += 1
        self.samples += self.cfg.batch_size
        return {"loss": total, "task_sum": task_sum, "task_count": task_count, "lr": lr, "grad_norm": norm}

    # ------------------------------------------------------------------ loop
    def _save(self) -> Path:
        index = self.cfg.stage_at(self.step - 1)[0] if self.step > 0 else 0
        state = self.stream.state_dict() if self.stream is not None else None
        rank_state = {"stage": self.stream_stage, "stream": state, "rng": ckpt_io.rng_state(self.generators)}
        meta = {"stage": self.cfg.stages[index].name, "config": self.cfg.to_dict(),
                "data": self.data_dirs}
        return ckpt_io.save_checkpoint(self.out, step=self.step, samples=self.samples, model=self.raw,
                                       config=self.mcfg, names=self.names, ema=self.ema, optimizer=self.optimizer,
                                       strategy=self.strategy, rank_state=rank_state, meta=meta, info=self.info,
                                       keep_last=self.cfg.keep_last, keep_every=self.opts.keep_every)

    def _log(self, acc: dict[str, Any], steps: int, seconds: float, started: float) -> None:
        vec = torch.cat([torch.tensor([acc["loss"]], dtype=torch.float64), acc["task_sum"], acc["task_count"]])
        vec = all_reduce_sum(vec.to(self.device) if self.device.type == "cuda" else vec).cpu()
        n = len(self.task_index)
        loss = float(vec[0]) / (steps * self.info.world_size)
        sums, counts = vec[1:1 + n], vec[1 + n:]
        record = {"step": self.step, "samples": self.samples, "stage": self.cfg.stages[self.cfg.stage_at(self.step - 1)[0]].name,
                  "loss": loss, "lr": acc["lr"], "grad_norm": acc["grad_norm"],
                  "samples_per_s": steps * self.cfg.batch_size / max(seconds, 1e-9),
                  "time": time.monotonic() - started}
        for task, i in self.task_index.items():
            if counts[i] > 0:
                record[f"loss/{task}"] = float(sums[i] / counts[i])
        self.logger.log(record)
        self.progress.log(record)

    def run(self) -> TrainResult:
        cfg, opts = self.cfg, self.opts
        rank_state = self._prepare_run_dir()
        end = cfg.total_steps if opts.max_steps is None else min(cfg.total_steps, opts.max_steps)
        self.progress = TrainProgress(end, self.step, enabled=self.info.is_main and opts.progress is not False,
                                      bar=opts.progress, tensorboard=opts.tensorboard)
        stopper = _StopSignal(opts.handle_signals)
        started = time.monotonic()
        deadline = None if opts.minutes is None else started + 60.0 * opts.minutes
        stopped_by, last_ckpt = "done", None
        acc: dict[str, Any] | None = None
        window_steps, window_start = 0, time.monotonic()
        try:
            while self.step < end:
                index, local = cfg.stage_at(self.step)
                if index != self.stream_stage:
                    self._open_stage(index, local, rank_state)
                    rank_state = None
                out = self.train_step(self.stream.next_batch())
                if acc is None:
                    acc = out
                else:
                    acc.update(loss=acc["loss"] + out["loss"], task_sum=acc["task_sum"] + out["task_sum"],
                               task_count=acc["task_count"] + out["task_count"], lr=out["lr"],
                               grad_norm=out["grad_norm"])
                window_steps += 1
                self.progress.step()
                if self.step % cfg.log_every == 0 or self.step == end:
                    self._log(acc, window_steps, time.monotonic() - window_start, started)
                    acc, window_steps, window_start = None, 0, time.monotonic()
                reason = "signal" if stopper.flag else ("minutes" if deadline and time.monotonic() >= deadline else None)
                stop = any_rank(reason is not None, self.device)
                if self.step % cfg.checkpoint_every == 0 or stop or self.step == end:
                    last_ckpt = self._save()
                if stop:
                    stopped_by = reason or "signal"
                    break
            else:
                stopped_by = "done" if end == cfg.total_steps else "max_steps"
                if last_ckpt is None or ckpt_io.read_state(last_ckpt)["step"] != self.step:
                    last_ckpt = self._save()
        finally:
            stopper.restore()
            self.progress.close()
            if isinstance(self.stream, (Prefetcher, MixedStream)):
                self.stream.close()
        fingerprints = self._fingerprints()
        export = None
        if self.info.is_main:
            export = ckpt_io.export(last_ckpt, self.out / EXPORT_FILE)
            if (self.out / "metrics.jsonl").is_file():
                try:
                    draw_loss_curve(self.out / "metrics.jsonl", self.out / "loss.png")
                except ValueError:
                    pass  # no positive loss logged yet
            summary = {"step": self.step, "samples": self.samples, "stopped_by": stopped_by,
                       "checkpoint": str(last_ckpt), "export": str(export), "fingerprints": fingerprints,
                       "text_cache": self.text.stats(), "world_size": self.info.world_size,
                       "strategy": self.strategy}
            (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
            if len(set(fingerprints)) > 1:
                raise RuntimeError(f"replicas diverged: rank weight hashes {fingerprints}")
        return TrainResult(self.step, self.samples, self.step == cfg.total_steps, stopped_by, last_ckpt, export,
                           fingerprints)

    def _fingerprints(self) -> list[str]:
        if self.strategy != "ddp":
            return []
        state = {n: t for n, t in self.raw.state_dict().items() if n in set(self.names)}
        return [str(f) for f in gather_objects(replica_fingerprint(state))]


def _mix(parts: list[int], tag: int) -> int:
    """A 63-bit seed from integers (numpy SeedSequence hashing: distinct inputs, unrelated streams)."""
    import numpy as np

    return int(np.random.SeedSequence([*parts, tag]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def train(cfg: TrainConfig, opts: RunOptions) -> TrainResult:
    """Build a :class:`Trainer` and run it (the one entry point for the CLI and torchrun)."""
    return Trainer(cfg, opts).run()
