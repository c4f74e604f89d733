"""The fine-tune report next to the adapter: ``report.md`` (tables), ``report.json`` and
``before_after.png`` (input | before | after | target per held-out pair)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixwizard.eval.harness import atomic_write_bytes, write_png
from pixwizard.eval.report import fit_cell
from pixwizard.finetune.evaluate import AFTER, BASELINE, BEFORE, ForgettingScores, HeldoutScores

SHEET = "before_after.png"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def before_after_sheet(held: HeldoutScores, rows: int = 6, cell: int = 128) -> np.ndarray:
    cols = [c for c in ("input", BEFORE, AFTER, "target") if c in held.images[0]]
    header = np.full((20, cell * len(cols), 3), 255, np.uint8)
    for i, c in enumerate(cols):
        cv2.putText(header, c, (i * cell + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    body = [np.concatenate([fit_cell(item[c], cell, cv2.INTER_AREA) for c in cols], axis=1) for item in held.images[:rows]]
    return np.concatenate([header, *body], axis=0)


def render(summary: dict[str, Any], held: HeldoutScores, forgetting: ForgettingScores | None,
           curve: list[dict[str, Any]] | None = None) -> str:
    lines = [f"# Fine-tune report: {summary['task']}", ""]
    lines += [f"- {k}: {v}" for k, v in summary.items() if k != "task"]
    lines += ["", f"## Held-out pairs ({len(held.per_pair)})", "",
              "| | " + " | ".join(held.metrics) + " |", "|---|" + "---|" * len(held.metrics)]
    labels = {BASELINE: "input (do nothing)", BEFORE: "base model", AFTER: "fine-tuned"}
    for row in (BASELINE, BEFORE, AFTER):
        if row in held.means:
            lines.append(f"| {labels[row]} | " + " | ".join(_fmt(held.means[row][m]) for m in held.metrics) + " |")
    if held.note:
        lines += ["", f"Note: {held.note}."]
    lines += ["", f"![before/after]({SHEET})", ""]
    if curve:
        lines += ["## Learning curve (held-out pairs, fine-tuned model at each kept checkpoint)", "",
                  "| step | samples | training CPU s | " + " | ".join(held.metrics) + " |",
                  "|---|---|---|" + "---|" * len(held.metrics)]
        lines += [f"| {r['step']} | {r['samples']} | {_fmt(r['cpu_s'])} | " +
                  " | ".join(_fmt(r.get(m)) for m in held.metrics) + " |" for r in curve]
        lines += ["", "![training loss](loss.png)", ""]
    if forgetting is not None:
        lines += [f"## Old tasks (quick suite, {forgetting.limit} item(s) per task)", "",
                  "| task | domain | metric | base | fine-tuned | change |", "|---|---|---|---|---|---|"]
        worse = 0
        for task, r in forgetting.tasks.items():
            b, a = r["before"], r["after"]
            delta = None if b is None or a is None else a - b
            if delta is not None and (delta < 0) == r["higher_is_better"] and delta != 0:
                worse += 1
            lines.append(f"| {task} | {r['domain']} | {r['metric']} | {_fmt(b)} | {_fmt(a)} | {_fmt(delta)} |")
        lines += ["", f"{worse} of {len(forgetting.tasks)} old tasks score worse after fine-tuning "
                      f"(few items per task: small changes are noise)."]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path, summary: dict[str, Any], held: HeldoutScores,
                 forgetting: ForgettingScores | None, curve: list[dict[str, Any]] | None = None) -> Path:
    folder = Path(folder)
    write_png(folder / SHEET, before_after_sheet(held))
    doc = {"summary": summary, "heldout": {"metrics": held.metrics, "means": held.means, "pairs": held.per_pair,
                                           "note": held.note},
           "forgetting": None if forgetting is None else {"limit": forgetting.limit, "tasks": forgetting.tasks},
           "curve": curve}
    atomic_write_bytes(folder / "report.json", json.dumps(doc, indent=1, default=float).encode())
    atomic_write_bytes(folder / "report.md", render(summary, held, forgetting, curve).encode())
    return folder / "report.md"
