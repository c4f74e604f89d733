"""``pixwizard finetune DATA --task-config TASK.json --out DIR``: teach a new task or look from pairs.

Checks the pairs, trains a LoRA adapter (or the full model) from ``--base`` (default: the shipped
model; any PixWizard model file works), then scores held-out pairs before/after (input as the
baseline) and the old tasks on the quick suite, and writes ``report.md`` + ``before_after.png``
next to the adapter. Rerun with ``--resume`` to continue a stopped run. See docs/finetune.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from pixwizard.commands import name_list_option


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune on your own pairs (LoRA adapter or full), with before/after report",
                       description="Teach PixWizard a new task or look from a folder of NAME_input/NAME_target "
                                   "pairs or a JSONL manifest; writes an adapter and a before/after report.")
    p.add_argument("data", help="folder of NAME_input.*/NAME_target.* pairs, or a .jsonl manifest")
    p.add_argument("--out", help="run folder (checkpoints, adapter, report)")
    p.add_argument("--task-config", help="JSON: name, domain, codec, phrasings (see docs/finetune.md)")
    p.add_argument("--task", help="new task name (instead of --task-config)")
    p.add_argument("--phrasing", action="append", default=[], help="how users ask for it (repeatable)")
    p.add_argument("--domain", default="restoration", help="task domain (default restoration)")
    p.add_argument("--codec", default="image", help="target codec (default image)")
    p.add_argument("--config", help="JSON of FinetuneConfig options (flags below override it)")
    p.add_argument("--base", help="base model .safetensors (default: the shipped pixwizard-tiny)")
    p.add_argument("--mode", choices=("lora", "full"))
    p.add_argument("--rank", type=int)
    p.add_argument("--alpha", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--targets", help="comma-separated module paths inside a DiT block "
                                     "(default attention.wqkv,attention.wo,attention.wkv_y,attention.wkv_ii,"
                                     "feed_forward.w13,feed_forward.w2)")
    for name, typ in (("steps", int), ("batch-size", int), ("lr", float), ("size", int), ("holdout", float),
                      ("seed", int), ("ema-decay", float), ("checkpoint-every", int), ("log-every", int)):
        p.add_argument(f"--{name}", type=typ)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    p.add_argument("--parallel", choices=("auto", "none", "ddp", "fsdp"),
                   help="several processes (torchrun --nproc-per-node N -m pixwizard.cli finetune ...): "
                        "auto = DDP; fsdp shards each DiT block (FSDP2)")
    p.add_argument("--adapter-name", help="adapter name (default: the task name)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--minutes", type=float, help="wall-clock budget; saves and stops (rerun with --resume)")
    p.add_argument("--max-steps", type=int, help="stop after this step (schedule unchanged)")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if present)")
    p.add_argument("--check-only", action="store_true", help="only run the data checker")
    p.add_argument("--skip-bad", action="store_true", help="train on the usable pairs of a set with problems")
    p.add_argument("--eval-steps", type=int, help="sampling steps for the evaluation (default: the model's)")
    p.add_argument("--quick-limit", type=int, default=1,
                   help="quick-suite items per old task for the forgetting check (0 = skip; default 1)")
    p.add_argument("--no-eval", action="store_true", help="train only; no before/after report")
    p.add_argument("--curve", action="store_true",
                   help="LoRA: also score the held-out pairs at every kept checkpoint (the learning curve)")
    p.set_defaults(func=main)


def build_config(args: argparse.Namespace):
    from pixwizard.finetune.config import FinetuneConfig, NewTaskConfig, _read_json

    base = _read_json(args.config, "finetune config") if args.config else {}
    if args.task_config:
        base["task"] = NewTaskConfig.from_file(args.task_config).to_dict()
    elif args.task:
        base["task"] = {"name": args.task, "domain": args.domain, "codec": args.codec, "phrasings": args.phrasing}
    if "task" not in base:
        raise ValueError("say what the new task is: --task-config TASK.json, or --task NAME --phrasing '...'")
    flags = {"mode": args.mode, "rank": args.rank, "alpha": args.alpha, "dropout": args.dropout,
             "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "size": args.size,
             "holdout": args.holdout, "seed": args.seed, "ema_decay": args.ema_decay, "precision": args.precision,
             "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
             "adapter_name": args.adapter_name, "parallel": args.parallel,
             "targets": name_list_option(args.targets) if args.targets else None}
    base.update({k: v for k, v in flags.items() if v is not None})
    return FinetuneConfig.from_dict(base)


def main(args: argparse.Namespace) -> int:
    from pixwizard.checkpoint import DEFAULT_CHECKPOINT
    from pixwizard.finetune.pairs import load_and_check, split_pairs

    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports and evaluates
    report = load_and_check(args.data)
    for line in report.lines() if main_rank else ():
        print(f"data: {line}")
    if args.check_only:
        report.require_usable(skip_bad=True)
        return 0 if not report.broken else 2
    if not args.out:
        raise ValueError("give --out DIR for the run")
    if args.quick_limit < 0:
        raise ValueError(f"--quick-limit must be >= 0, got {args.quick_limit}")
    report.require_usable(args.skip_bad)
    cfg = build_config(args)
    base = Path(args.base) if args.base else DEFAULT_CHECKPOINT
    train_pairs, held = split_pairs(report.pairs, cfg.holdout, cfg.seed)
    if main_rank:
        print(f"data: {len(train_pairs)} training pair(s), {len(held)} held out")

    from pixwizard.finetune.loop import finetune

    cpu0, t0 = time.process_time(), time.perf_counter()
    result = finetune(cfg, base, train_pairs, args.out, instructions=report.instructions, device=args.device,
                      resume=args.resume, max_steps=args.max_steps, minutes=args.minutes)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    if not main_rank:
        return 0
    print(f"trained {result.step}/{cfg.steps} steps ({result.samples} samples, stopped: {result.stopped_by}) "
          f"in {wall:.0f} s wall, {cpu:.0f} s CPU; wrote {result.output}")
    if args.no_eval or result.stopped_by in ("signal",):
        return 0
    summary = {"task": cfg.task.name, "base": str(base), "mode": cfg.mode,
               "lora": f"rank {cfg.rank}, alpha {cfg.alpha}, targets {','.join(cfg.targets)}" if cfg.mode == "lora" else "-",
               "steps": f"{result.step} of {cfg.steps} (batch {cfg.batch_size}, {cfg.size} px, lr {cfg.lr})",
               "pairs": f"{len(train_pairs)} train, {len(held)} held out",
               "training time (this process)": f"{wall:.0f} s wall, {cpu:.0f} s CPU",
               "output": result.output.name}
    path = evaluate_run(cfg, base, result.output, held, report.instructions, args, summary)
    print(f"wrote {path}")
    print(Path(path).read_text().split("## Old tasks")[0].strip())
    return 0


def evaluate_run(cfg, base: Path, output: Path, held, instructions, args, summary) -> Path:
    from pixwizard.finetune.evaluate import score_checkpoints, score_forgetting, score_heldout
    from pixwizard.finetune.report import write_report
    from pixwizard.finetune.tasks import is_custom
    from pixwizard.pipeline import PixWizardPipeline
    from pixwizard.tasks.instructions import phrasings
    from pixwizard.tasks.registry import task_ids

    texts = instructions or tuple(phrasings(cfg.task.name, "all"))
    out = output.parent
    t0 = time.perf_counter()
    if cfg.mode == "lora":
        pipe = PixWizardPipeline.from_pretrained(base, device=args.device)
        name = pipe.load_adapter(output)
        base_pipe = None
    else:
        pipe = PixWizardPipeline.from_pretrained(output, device=args.device)
        base_pipe = PixWizardPipeline.from_pretrained(base, device=args.device)
        name = None
    held_scores = score_heldout(pipe, held, cfg.task.name, name, texts, steps=args.eval_steps, seed=cfg.seed)
    if base_pipe is not None:  # full fine-tuning: the base model's outputs come from the base pipeline
        base_scores = score_heldout(base_pipe, held, cfg.task.name, None, texts, steps=args.eval_steps, seed=cfg.seed)
        held_scores.means["before"] = base_scores.means["after"]
        for item, b in zip(held_scores.images, base_scores.images):
            item["before"] = b["after"]
        held_scores.images = [{k: item[k] for k in ("input", "before", "after", "target")} for item in held_scores.images]
        for row, b in zip(held_scores.per_pair, base_scores.per_pair):
            row["before"] = b["after"]
        held_scores.means = {k: held_scores.means[k] for k in ("input", "before", "after")}
    forgetting = None
    if args.quick_limit > 0:
        custom = {t for t in task_ids() if is_custom(t)}
        forgetting = score_forgetting(pipe, name, out / "eval", limit=args.quick_limit, custom=custom,
                                      steps=args.eval_steps, base_pipe=base_pipe)
    curve = None
    if args.curve and name is not None:
        curve = score_checkpoints(pipe, name, out, held, cfg.task.name, texts, steps=args.eval_steps, seed=cfg.seed)
    summary = {**summary, "evaluation time": f"{time.perf_counter() - t0:.0f} s wall"}
    return write_report(out, summary, held_scores, forgetting, curve)


