"""Before/after evaluation of a fine-tune.

- Held-out pairs: each is run through the base model (adapter off) and the fine-tuned model
  (adapter on) with the same seed, and scored against its target; the input itself is the
  baseline ("do nothing"). Image-codec tasks score PSNR and SSIM (``pixwizard.eval.metrics``);
  mask and overlay tasks decode output and target with the task's codec and score the IoU of the
  masks; other codecs are scored as images (PSNR/SSIM of the target image), which the report says.
- Forgetting: the shipped tasks are re-scored on the quick suite (``pixwizard.eval.harness``,
  ``--limit`` items per task) before and after, so a loss on old tasks is visible.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixwizard.eval.metrics.image import psnr, ssim
from pixwizard.finetune.pairs import Pair
from pixwizard.tasks.codecs import codec_for
from pixwizard.tasks.colours import colour_in_text
from pixwizard.tasks.registry import get_task

BASELINE, BEFORE, AFTER = "input", "before", "after"


@dataclass
class HeldoutScores:
    metrics: tuple[str, ...]
    means: dict[str, dict[str, float]]  # row (input/before/after) -> metric -> mean over pairs
    per_pair: list[dict[str, Any]]
    images: list[dict[str, np.ndarray]]  # per pair: input, before, after, target
    note: str = ""


@dataclass
class ForgettingScores:
    limit: int
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> headline, before, after, higher


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def score_output(task: str, output: np.ndarray, target: np.ndarray, image: np.ndarray,
                 instruction: str) -> dict[str, float]:
    """The pair-level scores of one output (see the module doc)."""
    codec = codec_for(task)
    if codec.name in ("mask", "overlay"):
        colour = colour_in_text(instruction)
        opts = {"colour": colour} if colour else {}
        if codec.name == "overlay" and not colour:
            return {"psnr": psnr(output, target), "ssim": ssim(output, target)}
        return {"iou": _mask_iou(codec.decode(output, image, opts).mask, codec.decode(target, image, opts).mask)}
    return {"psnr": psnr(output, target), "ssim": ssim(output, target)}


def _finite_mean(values: list[float]) -> float:
    vals = [min(v, 100.0) if math.isinf(v) else v for v in values]  # identical images: PSNR capped at 100 dB
    return float(np.mean(vals)) if vals else float("nan")


def score_heldout(pipe, pairs: list[Pair], task: str, adapter: str | None, instructions: tuple[str, ...], *,
                  steps: int | None = None, seed: int = 0, size: int | None = None,
                  before: bool = True) -> HeldoutScores:
    """Score ``pairs`` with the input as baseline, the base model, and the model with ``adapter``
    applied (``adapter`` None: ``pipe`` already is the fine-tuned model and 'before' is skipped)."""
    if not pairs:
        raise ValueError("no held-out pairs to score: set holdout > 0")
    rows: dict[str, list[dict[str, float]]] = {BASELINE: [], BEFORE: [], AFTER: []}
    per_pair, images = [], []
    for i, p in enumerate(pairs):
        text = p.instruction or instructions[i % len(instructions)]
        outs = {BASELINE: p.input}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for row, name in ((BEFORE, None), (AFTER, adapter)):
                if (adapter is None or not before) and row == BEFORE:
                    continue
                if adapter is not None:
                    pipe.set_adapter(name)
                outs[row] = pipe(p.input, text, steps=steps, seed=seed + i, size=size, task=task, decode=False).image
        if adapter is not None:
            pipe.set_adapter(adapter)
        scores = {row: score_output(task, out, p.target, p.input, text) for row, out in outs.items()}
        for row, s in scores.items():
            rows[row].append(s)
        per_pair.append({"name": p.name, "instruction": text, **{row: s for row, s in scores.items()}})
        images.append({"input": p.input, **{r: o for r, o in outs.items() if r != BASELINE}, "target": p.target})
    metrics = tuple(rows[BASELINE][0])
    means = {row: {m: _finite_mean([s[m] for s in items]) for m in metrics} for row, items in rows.items() if items}
    spec = get_task(task)
    note = "" if spec.codec in ("image", "mask", "overlay") else (
        f"the {spec.codec} codec's outputs are scored as images (PSNR/SSIM of the target image)")
    return HeldoutScores(metrics, means, per_pair, images, note)


def quick_suite_without(custom: set[str], suite_name: str = "quick"):
    """The quick suite restricted to the shipped tasks (a run-time task has no item generator)."""
    from pixwizard.eval.suites import load_suite

    suite = load_suite(suite_name)
    return dataclasses.replace(suite, tasks=tuple(t for t in suite.tasks if t not in custom))


def score_forgetting(pipe, adapter: str | None, run_root: str | Path, *, limit: int, custom: set[str],
                     steps: int | None = None, base_pipe=None, suite_name: str = "quick") -> ForgettingScores:
    """Headline metric of every shipped task on the quick suite, base model vs fine-tuned.

    LoRA: ``pipe`` with ``adapter`` on and off. Full fine-tuning: ``base_pipe`` (the base model)
    and ``pipe`` (the fine-tuned one) with ``adapter`` None."""
    from pixwizard.eval.harness import ModelPredictor, evaluate

    suite = quick_suite_without(custom, suite_name)
    root = Path(run_root)
    results = {}
    for row in (BEFORE, AFTER):
        if adapter is not None:
            pipe.set_adapter(None if row == BEFORE else adapter)
            runner = pipe
        else:
            runner = base_pipe if row == BEFORE else pipe
        metrics, _ = evaluate(suite, ModelPredictor(runner, row, steps), root / row, limit=limit, progress=False)
        results[row] = metrics
    if adapter is not None:
        pipe.set_adapter(adapter)
    out = ForgettingScores(limit)
    for task, r in results[BEFORE]["tasks"].items():
        headline = r["metric_order"][0]
        after = results[AFTER]["tasks"][task]["metrics"].get(headline)
        out.tasks[task] = {"domain": r["domain"], "metric": headline, "before": r["metrics"].get(headline),
                           "after": after, "higher_is_better": r["higher_is_better"][headline]}
    return out


def score_checkpoints(pipe, adapter: str, run_dir: str | Path, pairs: list[Pair], task: str,
                      instructions: tuple[str, ...], *, steps: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Held-out scores of the adapter at every kept checkpoint of a LoRA run (the learning curve; the
    EMA weights when the run exports an EMA, else the training weights):
    rows of step, samples, training CPU seconds at that step (from metrics.jsonl) and the means."""
    import json

    from safetensors.torch import load_file

    from pixwizard.train.checkpoint import list_checkpoints, read_state

    run_dir = Path(run_dir)
    cpu = {}
    if (run_dir / "metrics.jsonl").is_file():
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            r = json.loads(line)
            cpu[r["step"]] = r.get("cpu_s")
    params = dict(pipe.model.named_parameters())
    final = {n: p.detach().clone() for n, p in params.items() if f".{adapter}." in n}
    rows = []
    try:
        for ckpt in list_checkpoints(run_dir):
            info = read_state(ckpt)
            ema = float(info.get("config", {}).get("ema_decay", 0.0)) > 0  # score what the export would be
            state = load_file(str(ckpt / ("ema.safetensors" if ema else "model.safetensors")))
            if set(state) != set(final):
                raise ValueError(f"{ckpt} does not hold adapter {adapter!r}'s tensors (a LoRA run's checkpoint)")
            with torch.no_grad():
                for n, t in state.items():
                    params[n].copy_(t)
            s = score_heldout(pipe, pairs, task, adapter, instructions, steps=steps, seed=seed, before=False)
            rows.append({"step": info["step"], "samples": info["samples"], "cpu_s": cpu.get(info["step"]),
                         **{m: s.means[AFTER][m] for m in s.metrics}})
    finally:
        with torch.no_grad():
            for n, t in final.items():
                params[n].copy_(t)
    return rows
