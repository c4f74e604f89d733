"""The training campaign's learning curve and compute ledger.

A ledger (JSON, kept in ``docs/learning-curve.json``) has one row per evaluated checkpoint::

    {"rows": [{"label": "warm start", "samples": 219424, "cpu_hours": 3.2,
               "machine": "2 cores, AMX", "precision": "bf16", "note": "...",
               "suites": {"photo-restoration": {"restoration/psnr": 22.2, ...}, ...}}]}

``shipped`` (default true) marks rows whose weights were shipped; the plot joins those and draws
the others as crosses (a stretch that branched off and was not kept). ``samples`` and ``cpu_hours`` are cumulative over the model's whole lineage (all the training
that led to the weights). A suite summary is read from a ``pixwizard eval`` run folder's
``metrics.json``: for every domain and metric, the mean over the suite's tasks of that domain
(non-finite task values are left out and counted in ``<domain>/<metric>/n_inf``), plus the mean
and maximum output blockiness over the tasks that report it. :func:`draw_learning_curve` plots a
few headline series against cumulative samples; :func:`markdown_table` writes the model card's
table. Writes are atomic (the project's ``imageio._atomic_write``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image, ImageDraw

from pixwizard.imageio import _atomic_write

# (suite, summary key, label, higher is better) drawn by draw_learning_curve
HEADLINE: tuple[tuple[str, str, str, bool], ...] = (
    ("photo-restoration", "restoration/psnr", "photo restoration PSNR", True),
    ("photo-restoration", "editing/psnr", "styles PSNR", True),
    ("photo-restoration", "inpainting/psnr", "inpainting PSNR", True),
    ("world-heldout", "editing/psnr", "world edits PSNR", True),
    ("photo-restoration-256px", "restoration/psnr", "restoration PSNR at 256 px", True),
)
_COLOURS = [(30, 80, 200), (200, 60, 40), (40, 150, 60), (150, 60, 170), (220, 140, 0), (0, 150, 160)]


def summarize_eval(run_dir: str | Path) -> tuple[str, dict[str, float]]:
    """(suite name with its size suffix, summary) of one ``pixwizard eval`` run folder."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a `pixwizard eval` run folder (OUT/<suite>/<model>)")
    data = json.loads(path.read_text())
    tasks: Mapping[str, Any] = data.get("tasks", {})
    if not tasks:
        raise ValueError(f"{path} holds no task results")
    sums: dict[str, list[float]] = {}
    n_inf: dict[str, int] = {}
    blocky = []
    for entry in tasks.values():
        domain = entry.get("domain", "other")
        for metric, value in entry.get("metrics", {}).items():
            key = f"{domain}/{metric}"
            if value is None or not math.isfinite(float(value)):
                n_inf[key] = n_inf.get(key, 0) + 1
                continue
            sums.setdefault(key, []).append(float(value))
        b = entry.get("blockiness")
        if b is not None and math.isfinite(float(b)):
            blocky.append(float(b))
    summary = {k: sum(v) / len(v) for k, v in sorted(sums.items())}
    summary.update({f"{k}/n_inf": float(n) for k, n in sorted(n_inf.items())})
    if blocky:
        summary["blockiness/mean"] = sum(blocky) / len(blocky)
        summary["blockiness/max"] = max(blocky)
    return run_dir.parent.name, summary


def load_ledger(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        return {"rows": []}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path} is not a learning-curve ledger (a JSON object with a 'rows' list)")
    return data


def save_ledger(ledger: Mapping[str, Any], path: str | Path) -> Path:
    text = json.dumps(ledger, indent=1, sort_keys=True) + "\n"
    return _atomic_write(path, lambda f: f.write(text.encode()))


def add_row(ledger: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """Insert ``row`` (replacing a row of the same label), rows kept in order of samples."""
    for field in ("label", "samples", "cpu_hours"):
        if field not in row:
            raise ValueError(f"a ledger row needs {field!r}")
    if int(row["samples"]) < 0 or float(row["cpu_hours"]) < 0:
        raise ValueError("samples and cpu_hours must be >= 0")
    rows = [r for r in ledger["rows"] if r["label"] != row["label"]] + [dict(row)]
    ledger["rows"] = sorted(rows, key=lambda r: (int(r["samples"]), r["label"]))
    return ledger


def markdown_table(ledger: Mapping[str, Any], columns: Sequence[tuple[str, str, str]] | None = None) -> str:
    """The learning curve as a markdown table: one row per checkpoint, chosen summary columns."""
    cols = list(columns) if columns is not None else [(s, k, lbl) for s, k, lbl, _ in HEADLINE]
    head = ["checkpoint", "samples", "CPU-hours"] + [lbl for _, _, lbl in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in ledger["rows"]:
        cells = [str(r["label"]), f"{int(r['samples']):,}", f"{float(r['cpu_hours']):.2f}"]
        for suite, key, _ in cols:
            v = r.get("suites", {}).get(suite, {}).get(key)
            cells.append("-" if v is None else f"{v:.3g}" if abs(v) < 10 else f"{v:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def draw_learning_curve(ledger: Mapping[str, Any], out: str | Path, size: tuple[int, int] = (900, 520)) -> Path:
    """Headline held-out series (dB) against cumulative training samples (log axis)."""
    rows = [r for r in ledger["rows"] if int(r["samples"]) > 0]
    series = []
    for (suite, key, label, _), colour in zip(HEADLINE, _COLOURS):
        pts = [(int(r["samples"]), r["suites"][suite][key], bool(r.get("shipped", True))) for r in rows
               if key in r.get("suites", {}).get(suite, {})]
        if pts:
            series.append((label, colour, pts))
    if not series:
        raise ValueError("the ledger has no headline values to draw")
    w, h = size
    left, right, top, bottom = 60, 230, 30, 50
    xs = [math.log10(s) for _, _, pts in series for s, _, _ in pts]
    ys = [v for _, _, pts in series for _, v, _ in pts]
    x0, x1 = math.floor(min(xs) * 4) / 4, math.ceil(max(xs) * 4) / 4
    x1 = x1 if x1 > x0 else x0 + 0.25
    y0, y1 = math.floor(min(ys)) - 1, math.ceil(max(ys)) + 1

    def xy(s: float, v: float) -> tuple[float, float]:
        return (left + (math.log10(s) - x0) / (x1 - x0) * (w - left - right),
                top + (y1 - v) / (y1 - y0) * (h - top - bottom))

    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for v in range(int(y0), int(y1) + 1, max(1, int((y1 - y0) // 8))):
        _, y = xy(10 ** x0, v)
        d.line([left, y, w - right, y], fill=(228, 228, 228))
        d.text((8, y - 6), f"{v} dB", fill="black")
    k = x0
    while k <= x1 + 1e-9:
        x, _ = xy(10 ** k, y0)
        d.text((x - 18, h - bottom + 6), f"{10 ** k:,.0f}", fill="black")
        k += 0.25
    for i, (label, colour, pts) in enumerate(series):
        pts = sorted(pts)
        line = [xy(s, v) for s, v, shipped in pts if shipped]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        for x, y in line:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        for x, y in (xy(s, v) for s, v, shipped in pts if not shipped):  # stretches not shipped: crosses
            d.line([x - 4, y - 4, x + 4, y + 4], fill=colour, width=2)
            d.line([x - 4, y + 4, x + 4, y - 4], fill=colour, width=2)
        d.line([w - right + 12, top + 12 + 18 * i, w - right + 32, top + 12 + 18 * i], fill=colour, width=3)
        d.text((w - right + 38, top + 6 + 18 * i), label, fill="black")
    d.text((left, 8), "held-out quality vs cumulative training samples (log axis); x = a stretch not shipped",
           fill="black")
    d.text((w // 2 - 80, h - 22), "training samples seen by the weights", fill="black")
    return _atomic_write(out, lambda f: img.save(f, format="PNG"))
