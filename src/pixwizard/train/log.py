"""Training metrics: one JSON line per logged step, and a loss-curve PNG drawn with PIL.

Each line of ``metrics.jsonl`` holds ``step`` (optimiser steps done), ``samples`` (seen so far,
all ranks), ``stage``, ``loss`` (mean weighted flow loss over the logged steps, all ranks),
``loss/<task>`` (mean unweighted per-item loss of each task seen in them), ``lr``, ``grad_norm``
(before clipping, last step), ``samples_per_s`` (over the logged steps, wall clock) and ``time``
(seconds since the run (re)started).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


class MetricsLogger:
    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step`` (a resumed run rewrites what the killed run logged after its checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        self.path.write_text("".join(ln + "\n" for ln in keep))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def draw_loss_curve(metrics: str | Path, out: str | Path, size: tuple[int, int] = (800, 480)) -> Path:
    """Loss (log10 axis) against step, with stage boundaries as vertical lines."""
    rows = [r for r in read_metrics(metrics) if r.get("loss") is not None and r["loss"] > 0]
    if not rows:
        raise ValueError(f"no loss values in {metrics}")
    w, h = size
    left, right, top, bottom = 70, 20, 30, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    steps = [r["step"] for r in rows]
    logs = [math.log10(r["loss"]) for r in rows]
    s0, s1 = min(steps), max(max(steps), min(steps) + 1)
    lo, hi = math.floor(min(logs) * 4) / 4, math.ceil(max(logs) * 4) / 4
    hi = hi if hi > lo else lo + 0.25

    def xy(step: float, lg: float) -> tuple[float, float]:
        return (left + (step - s0) / (s1 - s0) * (w - left - right),
                top + (hi - lg) / (hi - lo) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline="black")
    k = lo
    while k <= hi + 1e-9:
        x0, y = xy(s0, k)
        d.line([x0, y, w - right, y], fill=(225, 225, 225))
        d.text((5, y - 6), f"{10 ** k:.3g}", fill="black")
        k += 0.25
    for i in range(5):
        s = s0 + (s1 - s0) * i / 4
        x, _ = xy(s, lo)
        d.text((x - 10, h - bottom + 5), f"{int(s)}", fill="black")
    prev = None
    for r in rows:
        if prev is not None and r.get("stage") != prev.get("stage"):
            x, _ = xy(r["step"], lo)
            d.line([x, top, x, h - bottom], fill=(200, 120, 0))
            d.text((x + 3, top + 3), str(r.get("stage")), fill=(200, 120, 0))
        prev = r
    d.line([xy(s, lg) for s, lg in zip(steps, logs)] if len(rows) > 1 else [xy(steps[0], logs[0])] * 2,
           fill=(30, 80, 200), width=2)
    d.text((left, 8), "training loss (log scale) vs step", fill="black")
    d.text((w // 2 - 15, h - 20), "step", fill="black")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out
