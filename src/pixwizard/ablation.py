"""The paper's ablation (DESIGN section 8) at laptop scale: train variants at equal compute, evaluate
each with the harness on one held-out suite, and tabulate quality against cost.

Equal compute means the same optimiser steps, batch, crop size, learning-rate plan, data and seed
for every variant; the variants differ only in the model switch they name (or, for
``no-two-stage``, in running the whole budget on the stage-2 mixture). The cost of what each
switch changes is measured, not assumed: FLOPs (torch's counter) and wall time of one training
step and of one inference step, timed alone after training so that runs sharing the machine do
not skew them.

Noise: the ``full`` variant is trained with several seeds; a variant's difference from the mean
of the full runs counts as an effect only where it exceeds the spread (max - min) of the full
runs on that column.

Layout under ``--out``: ``runs/<variant>-s<seed>/`` (training runs, resumable),
``eval/<suite>/model-<variant>-s<seed>/`` (harness runs, resumable), ``results.json`` and
``ablations.md``. Rerunning the same command resumes wherever it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pixwizard.train.config import StageConfig, TrainConfig


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig.model_overrides
    two_stage: bool = True
    # the paper's 40k-step row: Rain100L PSNR, RefCOCO val cIoU (%), NYUv2 depth RMSE
    paper: tuple[float, float, float] | None = None


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("full", "structural + semantic guidance, dynamic sampler, two stages", {}, True, (30.24, 41.72, 0.324)),
    Variant("structure-only", "no semantic encoder, tokens or global semantic embedding",
            {"model": {"use_semantic": False}}, True, (29.91, 40.78, 0.319)),
    Variant("semantic-only", "no condition concatenated (and so no condition skip)",
            {"model": {"use_structural": False, "condition_skip": False}}, True, (14.72, 18.43, 0.586)),
    Variant("no-sampler", "all semantic tokens attended (no task-aware dynamic sampler)",
            {"model": {"sampler_enabled": False}}, True, (30.19, 41.66, 0.318)),
    Variant("no-two-stage", "the whole budget on the stage-2 (weighted, t2i 1:1) mixture", {}, False,
            (29.17, 40.18, 0.322)),
    Variant("no-condition-skip", "ours, not in the paper: plain x-prediction without the condition skip",
            {"model": {"condition_skip": False}}, True, None),
]}
# The full model, spelt out so that the ablation does not move when a preset's defaults change.
FULL_MODEL = {"model": {"use_structural": True, "use_semantic": True, "sampler_enabled": True, "condition_skip": True}}


@dataclass(frozen=True)
class Column:
    """One column of the table: a metric of the suite, averaged over ``tasks``."""

    key: str
    label: str
    tasks: tuple[str, ...]
    metric: str
    higher_is_better: bool


COLUMNS: tuple[Column, ...] = (
    Column("derain", "derain PSNR", ("derain",), "psnr", True),
    Column("refseg", "refseg cIoU", ("refseg_overlay",), "ciou", True),
    Column("depth", "depth RMSE", ("depth",), "rmse", False),
    Column("edit", "edit PSNR", ("edit_remove", "edit_add", "edit_replace", "edit_recolor", "edit_move"), "psnr", True),
    Column("control", "canny->image edge F1", ("canny_to_image",), "edge_f1", True),
    Column("inpaint", "inpaint PSNR", ("inpaint_box", "inpaint_circle", "inpaint_freeform"), "psnr", True),
)


@dataclass
class AblationConfig:
    stage1_data: str  # balanced dataset (stage 1)
    stage2_data: str  # weighted dataset, t2i 1:1 (stage 2; the whole budget of no-two-stage)
    out: str
    budget: int = 400  # optimiser steps per variant
    batch_size: int = 16
    resolution: int = 64
    stage1_fraction: float = 0.75
    lr: float = 1e-3
    model: str = "tiny"  # model preset the variants change
    seeds: tuple[int, ...] = (0, 1)  # seeds of the full model; every other variant uses seeds[0]
    variants: tuple[str, ...] = tuple(VARIANTS)
    suite: str = "ablation"
    eval_limit: int | None = None
    check_mixture: bool = True  # stage datasets must be balanced / weighted as the stages expect
    device: str | None = None
    cost_size: int = 256  # side of the inference-step cost measurement

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.variants = tuple(self.variants)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown ablation variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
        if "full" not in self.variants:
            raise ValueError("the ablation needs the 'full' variant: every other row is compared with it")
        if not self.seeds:
            raise ValueError("give at least one seed")
        if self.budget < 2:
            raise ValueError(f"--budget must be at least 2 steps (two stages), got {self.budget}")
        if not 0.0 < self.stage1_fraction < 1.0:
            raise ValueError(f"stage1_fraction must be in (0, 1), got {self.stage1_fraction}")

    def runs(self) -> list[tuple[str, int]]:
        """(variant, seed) in training order: the full model's seeds first."""
        out = [("full", s) for s in self.seeds]
        return out + [(v, self.seeds[0]) for v in self.variants if v != "full"]


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def train_config(cfg: AblationConfig, variant: str, seed: int) -> TrainConfig:
    """The training run of one (variant, seed): same plan for all, changed only where the variant says."""
    v = VARIANTS[variant]
    res = (cfg.resolution,)
    mix1, mix2 = ("balanced", "weighted") if cfg.check_mixture else ("any", "any")
    if v.two_stage:
        n1 = max(1, min(cfg.budget - 1, round(cfg.budget * cfg.stage1_fraction)))
        stages = [StageConfig("stage1", steps=n1, lr=cfg.lr, resolutions=res, mixture=mix1, data=cfg.stage1_data),
                  StageConfig("stage2", steps=cfg.budget - n1, lr=cfg.lr, resolutions=res, mixture=mix2,
                              data=cfg.stage2_data)]
    else:
        stages = [StageConfig("stage2", steps=cfg.budget, lr=cfg.lr, resolutions=res, mixture=mix2,
                              data=cfg.stage2_data)]
    overrides = {"model": {**FULL_MODEL["model"], **v.overrides.get("model", {})}}
    return TrainConfig(name=f"ablate-{run_name(variant, seed)}", model=cfg.model, model_overrides=overrides,
                       stages=stages, batch_size=cfg.batch_size, seed=seed, precision="auto", ema_decay=0.999,
                       decay_fraction=0.2, checkpoint_every=max(1, min(100, cfg.budget // 4)), keep_last=2,
                       log_every=max(1, min(20, cfg.budget // 10)))


# ----------------------------------------------------------------------------- steps


def train_variant(cfg: AblationConfig, variant: str, seed: int, *, minutes: float | None = None) -> dict[str, Any]:
    """Train (or resume, or skip when finished) one run; returns its summary."""
    from pixwizard.train import checkpoint as ckpt_io
    from pixwizard.train.trainer import RunOptions, train

    out = Path(cfg.out) / "runs" / run_name(variant, seed)
    summary_path = out / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if summary.get("stopped_by") == "done":
            return summary
    tcfg = train_config(cfg, variant, seed)
    resume = out.is_dir() and ckpt_io.latest_checkpoint(out) is not None
    t0 = time.perf_counter()
    result = train(tcfg, RunOptions(out=out, resume=resume, minutes=minutes, device=cfg.device))
    return {"step": result.step, "samples": result.samples, "stopped_by": result.stopped_by,
            "seconds": time.perf_counter() - t0}


def training_rate(run_dir: Path) -> float | None:
    """Median training samples/s over the logged intervals of a run (robust to a resumed interval)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    rates = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interrupted write
        if "samples_per_s" in rec:
            rates.append(float(rec["samples_per_s"]))
    return statistics.median(rates) if rates else None


def evaluate_variant(cfg: AblationConfig, variant: str, seed: int, progress: bool = False) -> dict[str, Any]:
    from pixwizard.eval.harness import ModelPredictor, evaluate
    from pixwizard.eval.suites import load_suite
    from pixwizard.pipeline import PixWizardPipeline

    suite = load_suite(cfg.suite)
    name = run_name(variant, seed)
    model = Path(cfg.out) / "runs" / name / "model.safetensors"
    if not model.is_file():
        raise FileNotFoundError(f"{model}: the run {name} has not exported a model; train it first")
    pred = ModelPredictor(PixWizardPipeline.from_pretrained(str(model), device=cfg.device), str(model))
    run_dir = Path(cfg.out) / "eval" / suite.name / f"model-{name}"
    metrics, _ = evaluate(suite, pred, run_dir, limit=cfg.eval_limit, progress=progress)
    return metrics


def step_costs(cfg: AblationConfig, variant: str, repeats: int = 5) -> dict[str, float]:
    """FLOPs and wall time of one training step (batch x resolution, forward + backward + AdamW)
    and of one inference step (one forward at cost_size x cost_size, batch 1, semantic encoder included)."""
    from pixwizard.benchmarks.model import _flops, _timeit
    from pixwizard.model.encoders.base import TextEncoding
    from pixwizard.runtime import resolve_device
    from pixwizard.train.bench import bench_training
    from pixwizard.train.trainer import build_model

    mcfg = train_config(cfg, variant, cfg.seeds[0]).model_config()
    tr = bench_training(config=mcfg, size=cfg.resolution, batch=cfg.batch_size, steps=repeats, warmup=2,
                        device=cfg.device, count_flops=True)
    dev = resolve_device(cfg.device)
    model = build_model(mcfg, 0).to(dev).eval()
    g = torch.Generator().manual_seed(0)
    s, m = cfg.cost_size, mcfg.model
    x = torch.randn(1, m.in_channels, s // mcfg.codec.downsample, s // mcfg.codec.downsample, generator=g).to(dev)
    text = TextEncoding(torch.randn(1, 16, m.text_dim, generator=g).to(dev), torch.ones(1, 16, dtype=torch.bool, device=dev),
                        torch.randn(1, m.task_dim, generator=g).to(dev))
    t = torch.full((1,), 0.5, device=dev)

    def infer() -> None:
        with torch.inference_mode():
            model(x, t, torch.randn_like(x), text)

    return {"train_step_gflops": tr["flops_per_step"] / 1e9, "train_step_ms": 1000 * tr["seconds_per_step"],
            "infer_step_gflops": _flops(infer) / 1e9, "infer_step_ms": 1000 * _timeit(infer, repeats, warmup=2),
            "trainable_params": float(tr["params"])}


# ----------------------------------------------------------------------------- table


def column_value(metrics: dict[str, Any], col: Column) -> float | None:
    vals = []
    for task in col.tasks:
        m = metrics.get("tasks", {}).get(task, {}).get("metrics", {})
        if col.metric in m and m[col.metric] is not None:
            vals.append(float(m[col.metric]))
    return statistics.fmean(vals) if vals else None


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per-column mean and spread of the full runs, and each variant's difference from that mean,
    flagged where it exceeds the spread (the seed noise)."""
    rows = results["runs"]
    full = [r for r in rows.values() if r["variant"] == "full" and r.get("columns")]
    noise: dict[str, dict[str, float]] = {}
    for col in COLUMNS:
        vals = [r["columns"][col.key] for r in full if r["columns"].get(col.key) is not None]
        if vals:
            noise[col.key] = {"mean": statistics.fmean(vals), "spread": max(vals) - min(vals), "n": len(vals)}
    effects: dict[str, dict[str, Any]] = {}
    for name, r in rows.items():
        if r["variant"] == "full" or not r.get("columns"):
            continue
        eff = {}
        for col in COLUMNS:
            v, ref = r["columns"].get(col.key), noise.get(col.key)
            if v is None or ref is None:
                continue
            diff = v - ref["mean"]
            better = diff > 0 if col.higher_is_better else diff < 0
            eff[col.key] = {"diff": diff, "exceeds_noise": abs(diff) > ref["spread"] and ref["n"] > 1,
                            "better": better}
        effects[name] = eff
    return {"noise": noise, "effects": effects}


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.0f}"


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def render_table(results: dict[str, Any]) -> str:
    """The markdown table: one row per run, ours beside the paper's, costs, effects marked."""
    summary = summarise(results)
    cfg = results["config"]
    head = ["variant", "seed"] + [c.label for c in COLUMNS] + [
        "train step GFLOPs", "train step ms", "infer step GFLOPs", "infer step ms",
        "paper: Rain100L PSNR", "paper: RefCOCO cIoU", "paper: NYU RMSE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results["runs"].items():
        v = VARIANTS[r["variant"]]
        eff = summary["effects"].get(name, {})
        cells = [r["variant"], str(r["seed"])]
        for col in COLUMNS:
            val = r.get("columns", {}).get(col.key)
            text = _fmt(val)
            e = eff.get(col.key)
            if e is not None and e["exceeds_noise"]:
                text += " (+)" if e["better"] else " (-)"
            cells.append(text)
        cost = r.get("costs", {})
        cells += [_g(cost.get("train_step_gflops")), _fmt(cost.get("train_step_ms"), 0),
                  _g(cost.get("infer_step_gflops")), _fmt(cost.get("infer_step_ms"), 0)]
        cells += [f"{x:g}" for x in v.paper] if v.paper and r["seed"] == cfg["seeds"][0] else ["-"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    noise = summary["noise"]
    spread = ", ".join(f"{c.label} {_fmt(noise[c.key]['spread'])}" for c in COLUMNS if c.key in noise)
    lines += ["", f"Seed noise (max - min over {len(cfg['seeds'])} full-model seeds): {spread}. "
              "(+)/(-): the variant is better/worse than the full models' mean by more than that spread; "
              "unmarked differences are within seed noise."]
    return "\n".join(lines) + "\n"


def render_markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    parts = [
        "# Ablation results\n",
        f"Budget per run: {cfg['budget']} optimiser steps of batch {cfg['batch_size']} at {cfg['resolution']} px "
        f"({cfg['budget'] * cfg['batch_size']:,} samples), model preset `{cfg['model']}`, stage 1 = "
        f"{cfg['stage1_fraction']:.0%} of the steps on `{cfg['stage1_data']}`, stage 2 on `{cfg['stage2_data']}`. "
        f"Suite `{cfg['suite']}`. Costs: one training step (batch x resolution) and one inference step "
        f"({cfg['cost_size']} px, batch 1), timed alone on {results.get('machine', 'this machine')}.\n",
        render_table(results),
        "\nColumns: " + "; ".join(f"{c.label} = mean `{c.metric}` over {', '.join(c.tasks)}" for c in COLUMNS) + ".\n",
    ]
    return "\n".join(parts)


def run_ablation(cfg: AblationConfig, *, minutes_per_run: float | None = None, progress: bool = True,
                 log=print) -> dict[str, Any]:
    """Train, evaluate and measure every run (resuming), then write results.json and ablations.md."""
    from pixwizard.eval.harness import atomic_write_bytes, write_json

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    from pixwizard.runtime import resolve_device

    dev = resolve_device(cfg.device)
    machine = f"{torch.get_num_threads()} CPU threads" if dev.type == "cpu" else str(dev)
    results: dict[str, Any] = {"config": jsonable_config(cfg), "runs": {}, "machine": machine}
    costs: dict[str, dict[str, float]] = {}  # per variant; kept from an earlier call of the same ablation
    if results_path.is_file():
        old = json.loads(results_path.read_text())
        if old.get("config") == results["config"]:
            costs = {r["variant"]: r["costs"] for r in old.get("runs", {}).values() if r.get("costs")}
    unfinished = []
    for variant, seed in cfg.runs():
        name = run_name(variant, seed)
        log(f"[ablate] {name}: training ({VARIANTS[variant].description})")
        summary = train_variant(cfg, variant, seed, minutes=minutes_per_run)
        row: dict[str, Any] = {"variant": variant, "seed": seed, "train": summary,
                               "train_samples_per_s": training_rate(out / "runs" / name)}
        if summary.get("stopped_by") != "done":
            unfinished.append(name)
            results["runs"][name] = row
            continue
        log(f"[ablate] {name}: evaluating on suite {cfg.suite}")
        metrics = evaluate_variant(cfg, variant, seed, progress=progress)
        row["columns"] = {c.key: column_value(metrics, c) for c in COLUMNS}
        if variant not in costs:
            log(f"[ablate] {name}: measuring step costs")
            costs[variant] = step_costs(cfg, variant)
        row["costs"] = costs[variant]
        results["runs"][name] = row
        write_json(results_path, results)
    results["unfinished"] = unfinished
    results["summary"] = summarise(results)
    write_json(results_path, results)
    atomic_write_bytes(out / "ablations.md", render_markdown(results).encode())
    return results


def jsonable_config(cfg: AblationConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["seeds"], d["variants"] = list(cfg.seeds), list(cfg.variants)
    return d
