"""Command-line arguments of a training launch, shared by ``pixwizard train`` and
``torchrun -m pixwizard.train``."""

from __future__ import annotations

import argparse
import dataclasses
import json

from pixwizard.commands import int_list_option, json_object_option, name_list_option
from pixwizard.train.config import PRESETS, TrainConfig, merge_overrides, preset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="cpu-tiny", help=f"training preset: {', '.join(PRESETS)}")
    parser.add_argument("--data", nargs="+", default=[], metavar="DIR",
                        help="built dataset directory for all stages, or one per stage in order")
    parser.add_argument("--out", required=True, help="run directory (config, checkpoints, metrics, model)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also log loss, per-task losses, lr and samples/s to TensorBoard in DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it shows on a terminal)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this global step (schedule unchanged)")
    parser.add_argument("--steps", type=int, default=None, help="rescale the preset's plan to this many steps")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget; saves a checkpoint and stops")
    parser.add_argument("--init", default=None, help="model checkpoint to start the first stage from")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch per optimiser step")
    parser.add_argument("--micro-batch", type=int, default=None, help="per-process micro-batch (accumulation)")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: the preset's)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                        help="auto = bf16 only where the hardware runs it natively (default: the preset's)")
    parser.add_argument("--parallel", choices=("auto", "none", "ddp", "fsdp"), default=None,
                        help="auto = DDP when launched on several processes (default: the preset's)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="optimiser steps between checkpoints (default: the preset's)")
    parser.add_argument("--keep-every", type=int, default=0, metavar="N",
                        help="also keep every checkpoint whose step is a multiple of N, to score the run's EMA "
                             "along the way (default 0: only the newest few; not part of the config --resume checks)")
    parser.add_argument("--ema-decay", type=float, default=None, help="EMA decay in [0, 1) (default: the preset's)")
    parser.add_argument("--any-mixture", action="store_true",
                        help="accept datasets whatever their task mix (skip the balanced/weighted manifest check)")
    parser.add_argument("--model-overrides", default=None, metavar="JSON",
                        help='changes to the model preset, e.g. \'{"model": {"use_semantic": false}}\', merged into '
                             'the training preset\'s own (cpu-tiny-anneal sets {"flow": {"grid_share": 0.8}})')
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate of every stage (default: the preset's)")
    parser.add_argument("--resolutions", default=None, metavar="SIDES",
                        help="square crop sides of every stage, comma-separated, e.g. 96,128,192 (one drawn per "
                             "batch; the data must be built at least as large; default: the preset's)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="linear learning-rate warm-up over the first stage's first N steps (e.g. when continuing from --init)")
    parser.add_argument("--online-photos", default=None, metavar="RECIPE",
                        help="make photo items on the fly from this recipe's photo tasks and photos "
                             "(never-repeating; the shards then supply the other tasks)")
    parser.add_argument("--online-share", type=float, default=None,
                        help="share of each batch made on the fly (default 0.5)")
    parser.add_argument("--online-workers", type=int, default=1,
                        help="processes making online items ahead (0 = in the training process)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: faster steps after a compile of a minute or two "
                             "(needs a C++ compiler on CPU; `pixwizard bench train --compile` measures it)")
    parser.add_argument("--loss-weights", default=None, metavar="JSON",
                        help='per-task loss multipliers, e.g. \'{"t2i": 0.5}\'')
    parser.add_argument("--change-weight", type=float, default=None, metavar="W",
                        help="count the pixels each task changes (target differs from the input) 1 + W times "
                             "in its loss, so small changes (boxes, overlays, edits) are not outweighed by "
                             "copying the input (default: the preset's, 0)")
    parser.add_argument("--change-threshold", type=float, default=None, metavar="T",
                        help="mean |target - input| over channels (images in [-1, 1]) above which a pixel "
                             "counts as changed (default 0.1)")
    parser.add_argument("--change-tasks", default=None, metavar="TASKS",
                        help="comma-separated task ids the change weight applies to (default: every task), "
                             "e.g. refbox,refseg_overlay,edit_add")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset with the command-line overrides applied (validated by TrainConfig)."""
    cfg = preset(args.preset)
    if args.steps is not None:
        cfg = cfg.with_total_steps(args.steps)
    changes = {name: getattr(args, name) for name in
               ("batch_size", "micro_batch", "seed", "precision", "parallel", "checkpoint_every", "ema_decay",
                "change_weight", "change_threshold")
               if getattr(args, name) is not None}
    if args.loss_weights is not None:
        weights = json_object_option(args.loss_weights, "--loss-weights", "mapping task id -> weight")
        changes["loss_weights"] = {str(k): float(v) for k, v in weights.items()}
    if args.change_tasks is not None:
        tasks = name_list_option(args.change_tasks)
        if not tasks:
            raise ValueError("--change-tasks names no task")
        changes["change_tasks"] = list(tasks)
    if args.model_overrides is not None:
        given = json_object_option(args.model_overrides, "--model-overrides", "of PixWizardConfig fields")
        changes["model_overrides"] = merge_overrides(cfg.model_overrides, given)  # on top of the preset's own
    if args.lr is not None or args.warmup_steps is not None:
        if args.lr is not None and not args.lr > 0:
            raise ValueError(f"--lr must be > 0, got {args.lr}")
        if args.warmup_steps is not None and args.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
        stages = [dataclasses.replace(st, lr=args.lr) if args.lr is not None else st for st in cfg.stages]
        if args.warmup_steps is not None:
            stages[0] = dataclasses.replace(stages[0], warmup_steps=args.warmup_steps)
        cfg = dataclasses.replace(cfg, stages=stages)
    if args.resolutions is not None:
        sides = _sides(args.resolutions)
        cfg = dataclasses.replace(cfg, stages=[dataclasses.replace(st, resolutions=sides) for st in cfg.stages])
    if args.online_photos is not None:
        changes["online_recipe"] = str(args.online_photos)
    if args.online_share is not None:
        if args.online_photos is None:
            raise ValueError("--online-share needs --online-photos")
        changes["online_share"] = float(args.online_share)
    if args.any_mixture:
        changes["stages"] = [dataclasses.replace(st, mixture="any") for st in cfg.stages]
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _sides(text: str) -> tuple[int, ...]:
    sides = int_list_option(text, "--resolutions", "whole pixel sides (e.g. 96,128,192)")
    if not sides:
        raise ValueError("--resolutions names no crop side")
    return sides


def run_from_args(args: argparse.Namespace) -> int:
    from pixwizard.train.parallel import shutdown
    from pixwizard.train.trainer import RunOptions, train

    cfg = config_from_args(args)
    if args.max_steps is not None and args.max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0, got {args.max_steps}")
    if args.online_workers < 0:
        raise ValueError(f"--online-workers must be >= 0, got {args.online_workers}")
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    opts = RunOptions(out=args.out, data=list(args.data), resume=args.resume, max_steps=args.max_steps,
                      minutes=args.minutes, init=args.init, device=args.device,
                      online_workers=args.online_workers, progress=False if args.no_progress else None,
                      tensorboard=args.tensorboard, compile=args.compile,
                      keep_every=args.keep_every)
    if args.tensorboard:
        from pixwizard.train.progress import tensorboard_writer

        tensorboard_writer(args.tensorboard).close()  # a missing package is told now, not after setup
    try:
        result = train(cfg, opts)
    finally:
        shutdown()
    if result.export is not None:  # rank 0 only
        print(json.dumps({"step": result.step, "samples": result.samples, "stopped_by": result.stopped_by,
                          "checkpoint": str(result.checkpoint), "model": str(result.export)}))
    return 0
