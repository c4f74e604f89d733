"""Contact sheets: one PNG per domain showing (input | target) pairs with their instructions.

Each row is one item: the input and the target side by side (each resized to ``cell`` pixels
square, nearest-neighbour so that masks and palettes stay crisp), then the task id and the
instruction beneath, word-wrapped to the row width. Items are picked round-robin over the tasks
of the domain, in index order, so every task of a domain shows up before any repeats.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from pixwizard.data.shards import atomic_write_bytes, iter_dataset, png_bytes

FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class SheetStyle:
    cell: int = 128  # side of each image cell in pixels
    gap: int = 4  # pixels between the two images and around rows
    font_scale: float = 0.4
    line_height: int = 14
    max_lines: int = 4  # instruction lines shown per pair (the rest is cut with "...")
    columns: int = 3  # pairs side by side per sheet row
    background: tuple[int, int, int] = (255, 255, 255)  # RGB
    text_colour: tuple[int, int, int] = (20, 20, 20)  # RGB
    frame_colour: tuple[int, int, int] = (160, 160, 160)  # RGB, 1 px around each image


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only: strip accents ("moiré" -> "moire"), drop the rest."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _wrap(text: str, width_px: int, style: SheetStyle) -> list[str]:
    text = _ascii(text)
    char_w = cv2.getTextSize("n", FONT, style.font_scale, 1)[0][0] or 1
    lines = textwrap.wrap(text, max(8, width_px // char_w)) or [""]
    if len(lines) > style.max_lines:
        lines = lines[: style.max_lines]
        lines[-1] = lines[-1][:-3] + "..."
    return lines


def render_row(images: Sequence[np.ndarray], caption: str, style: SheetStyle) -> np.ndarray:
    """One row: the images side by side (e.g. input | target), ``caption`` wrapped beneath. HxWx3 uint8 RGB."""
    c, g = style.cell, style.gap
    width = len(images) * (c + g) + g
    lines = _wrap(caption, width - 2 * g, style)
    height = g + c + g + len(lines) * style.line_height + g
    row = np.full((height, width, 3), style.background, np.uint8)
    for i, img in enumerate(images):
        x = g + i * (c + g)
        row[g:g + c, x:x + c] = cv2.resize(img, (c, c), interpolation=cv2.INTER_NEAREST)
        cv2.rectangle(row, (x - 1, g - 1), (x + c, g + c), style.frame_colour, 1)  # white canvases stay visible
    for i, line in enumerate(lines):
        y = g + c + g + (i + 1) * style.line_height - 3
        cv2.putText(row, line, (g, y), FONT, style.font_scale, style.text_colour, 1, cv2.LINE_AA)
    return row


def tile(cells: list[np.ndarray], style: SheetStyle) -> np.ndarray:
    """Lay ``cells`` (equal widths) out ``style.columns`` per row, top-aligned, background-padded."""
    rows = []
    for i in range(0, len(cells), style.columns):
        group = cells[i:i + style.columns]
        height = max(c.shape[0] for c in group)
        group = group + [np.empty((0, cells[0].shape[1], 3), np.uint8)] * (min(style.columns, len(cells)) - len(group))
        rows.append(np.concatenate([
            np.concatenate([c, np.full((height - c.shape[0], c.shape[1], 3), style.background, np.uint8)])
            for c in group], axis=1))
    return np.concatenate(rows, axis=0)


def pick_per_domain(samples: Iterable[dict[str, Any]], per_domain: int) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_domain`` samples per domain, round-robin over each domain's tasks."""
    by_task: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        tasks = by_task[s["domain"]]
        if len(tasks[s["task"]]) < per_domain:
            tasks[s["task"]].append(s)
    picked = {}
    for domain, tasks in sorted(by_task.items()):
        chosen: list[dict[str, Any]] = []
        queues = [tasks[t] for t in sorted(tasks)]
        depth = 0
        while len(chosen) < per_domain and any(depth < len(q) for q in queues):
            chosen.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        picked[domain] = chosen[:per_domain]
    return picked


def make_contact_sheets(dataset: Path, out: Path, per_domain: int = 12,
                        style: SheetStyle = SheetStyle()) -> dict[str, Path]:
    """Write ``out/<domain>.png`` for every domain in a built dataset; returns domain -> path."""
    if per_domain < 1:
        raise ValueError(f"per_domain must be >= 1, got {per_domain}")
    picked = pick_per_domain(iter_dataset(Path(dataset)), per_domain)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for domain, samples in picked.items():
        cells = [render_row((s["input"], s["target"]), f"[{s['task']}] {s['instruction']}", style) for s in samples]
        sheet = tile(cells, style)
        path = out / f"{domain}.png"
        atomic_write_bytes(path, png_bytes(sheet))
        written[domain] = path
    return written
