"""Reports of an evaluation run: ``report.md`` (tables per domain) and ``grid.png`` (samples).

``write_report(run_dir, compare=())`` reads ``run_dir/metrics.json`` and, for comparison, every
other run of the same suite: the sibling run folders under the same ``--out`` root
(``OUT/<suite>/<tag>``) and the ``compare`` folders (a run folder, or a folder holding run
folders). Runs of a different suite are never mixed into the table.

Tables: one per domain, a row per (task, metric) and one for the outputs' ``blockiness`` (the
patch grid's visibility, 1 = none; see the harness), with an arrow for the better direction, our
value, each compared run's value, and the paper's number only where the suite follows the
paper's protocol (``pixwizard.eval.paper``); otherwise "n/a (different protocol)". Non-finite
values print as "inf"/"nan". Skipped metrics and items that could not be made are listed with
their reasons below the tables.

Grid: up to ``per_task`` items per task, one row each: input | output | target, every cell
resized (nearest, aspect kept, padded) to ``cell`` pixels, with the item key and its headline
score in a label strip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from pixwizard.eval.harness import (INPUT_PNG, METRICS_JSON, OUTPUT_PNG, RUN_JSON, TARGET_PNG, atomic_write_bytes,
                                    read_png, write_png)
from pixwizard.eval.paper import paper_numbers
from pixwizard.tasks.spec import DOMAINS

REPORT_MD, GRID_PNG = "report.md", "grid.png"
NA_PROTOCOL = "n/a (different protocol)"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _runs_in(folder: Path) -> list[Path]:
    if (folder / METRICS_JSON).is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / METRICS_JSON).is_file()) if folder.is_dir() else []


def comparison_runs(run_dir: Path, compare: Sequence[str | Path] = ()) -> list[tuple[str, dict[str, Any]]]:
    """(label, metrics.json) of every other run of the same suite: siblings, then ``compare``."""
    suite = _load(run_dir / METRICS_JSON)["suite"]
    found: dict[Path, None] = {}
    for folder in [run_dir.parent, *map(Path, compare)]:
        if not folder.exists():
            raise FileNotFoundError(f"--compare {folder}: no such folder")
        for p in _runs_in(folder):
            if p.resolve() != run_dir.resolve():
                found[p.resolve()] = None
    out = []
    for p in found:
        metrics = _load(p / METRICS_JSON)
        if metrics.get("suite") == suite:
            label = _load(p / RUN_JSON).get("tag", p.name) if (p / RUN_JSON).is_file() else p.name
            out.append((label, metrics))
    return out


def fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    v = float(value)
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4f}"


def render_markdown(metrics: dict[str, Any], run: dict[str, Any], others: list[tuple[str, dict[str, Any]]]) -> str:
    protocol = metrics.get("protocol")
    lines = [f"# Evaluation: suite `{metrics['suite']}`, model `{run.get('model', '?')}`", ""]
    if run.get("untrained"):
        lines += ["**The model weights are untrained: these numbers are a floor, not a result.**", ""]
    not_the_papers = "not the paper's (its numbers do not apply)"
    lines += [f"Protocol: {protocol or not_the_papers}.", ""]
    description = run.get("suite_config", {}).get("description")
    if description:
        lines += [f"Suite: {description}", ""]
    labels = [label for label, _ in others]
    header = ["task", "metric", "", "n", "ours", *labels, "paper"]
    notes: list[str] = []
    for domain in DOMAINS:
        tasks = [(t, r) for t, r in metrics["tasks"].items() if r["domain"] == domain]
        if not tasks:
            continue
        lines += [f"## {domain}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for task, r in tasks:
            paper = paper_numbers(protocol, task)
            for m in r["metric_order"]:
                ours = r["metrics"].get(m, "skipped" if m in r["skipped"] else "-")
                theirs = [fmt(o["tasks"].get(task, {}).get("metrics", {}).get(m)) for _, o in others]
                paper_cell = NA_PROTOCOL if protocol is None else fmt(paper.get(m))
                arrow = "↑" if r["higher_is_better"].get(m, True) else "↓"
                lines.append("| " + " | ".join([task, m, arrow, str(r["n_items"]), fmt(ours), *theirs, paper_cell])
                             + " |")
            if "blockiness" in r:  # the outputs' patch-grid visibility (runs scored before it existed lack it)
                theirs = [fmt(o["tasks"].get(task, {}).get("blockiness")) for _, o in others]
                label = "blockiness" + (f" (target {fmt(r['target_blockiness'])})" if "target_blockiness" in r else "")
                lines.append("| " + " | ".join([task, label, "↓", str(r["n_items"]), fmt(r["blockiness"]),
                                                *theirs, NA_PROTOCOL if protocol is None else "-"]) + " |")
            notes += [f"- `{task}` {m} skipped: {why}" for m, why in r["skipped"].items()]
            notes += [f"- `{task}` {m}: {e['count']} item(s) unscored, e.g. {e['first']}"
                      for m, e in r["item_errors"].items()]
            notes += [f"- `{task}` item {key} missing: {why}" for key, why in r["missing"].items()]
        lines.append("")
    if notes:
        lines += ["## Notes", "", *notes, ""]
    if protocol is not None:
        lines += ["The paper does not state the colour space of its PSNR/SSIM: its number is shown beside both "
                  "our RGB and Y values.", ""]
    lines += [f"Samples: `{GRID_PNG}` (input | output | target).", ""]
    return "\n".join(lines)


def fit_cell(image: np.ndarray, cell: int, interpolation: int = cv2.INTER_NEAREST) -> np.ndarray:
    """``image`` scaled to fit a ``cell`` x ``cell`` white square (top-left), for contact sheets."""
    h, w = image.shape[:2]
    s = cell / max(h, w)
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interpolation)
    out = np.full((cell, cell, 3), 255, np.uint8)
    out[:small.shape[0], :small.shape[1]] = small
    return out


def make_grid(run_dir: Path, metrics: dict[str, Any], per_task: int = 2, cell: int = 96,
              label_width: int = 200) -> np.ndarray | None:
    """input | output | target rows for up to ``per_task`` items of each task; None if none is predicted."""
    scores_path = run_dir / "item_scores.json"
    scores = _load(scores_path) if scores_path.is_file() else {}
    rows = []
    for task, r in metrics["tasks"].items():
        skipped = r.get("missing", {})  # not scored: not predicted, or a corrupt cached item
        folders = sorted(p for p in (run_dir / "items" / task).glob("*")
                         if (p / OUTPUT_PNG).is_file() and f"{task}/{p.name}" not in skipped)
        headline = r["metric_order"][0]
        for folder in folders[:per_task]:
            key = f"{task}/{folder.name}"
            cells = [fit_cell(read_png(folder / f), cell) for f in (INPUT_PNG, OUTPUT_PNG, TARGET_PNG)]
            label = np.full((cell, label_width, 3), 255, np.uint8)
            score = scores.get(key, {}).get(headline)
            for y, text in ((cell // 3, key), (2 * cell // 3, f"{headline} {fmt(score)}" if score is not None else "")):
                cv2.putText(label, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            rows.append(np.concatenate([label, *cells], axis=1))
    return np.concatenate(rows, axis=0) if rows else None


def write_report(run_dir: str | Path, compare: Sequence[str | Path] = (), per_task: int = 2) -> Path:
    """Write ``report.md`` and ``grid.png`` into ``run_dir``; returns the report's path."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS_JSON).is_file():
        raise FileNotFoundError(f"{run_dir} has no {METRICS_JSON}: score the run first")
    metrics = _load(run_dir / METRICS_JSON)
    run = _load(run_dir / RUN_JSON) if (run_dir / RUN_JSON).is_file() else {}
    text = render_markdown(metrics, run, comparison_runs(run_dir, compare))
    atomic_write_bytes(run_dir / REPORT_MD, text.encode())
    grid = make_grid(run_dir, metrics, per_task=per_task)
    if grid is not None:
        write_png(run_dir / GRID_PNG, grid)
    return run_dir / REPORT_MD
