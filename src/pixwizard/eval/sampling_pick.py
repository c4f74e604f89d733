"""Choose per-task sampling defaults (``flow.task_sampling``) from ``pixwizard eval`` runs.

The reference run is the model with its model-wide defaults; each candidate run is the same suite
and items with one other (steps, shifts). For every task, a candidate's paired item differences
against the reference on the task's headline metric (``pixwizard.eval.paired``), signed so that
positive is better, must have a mean above ``z`` standard errors (default 1.64: one-sided 95 %);
of the candidates that pass, the one with the largest mean gain is the task's choice. Tasks where
none passes keep the model-wide defaults (they are left out of the table).

Pick on a selection set that is not the held-out set the model is then scored on (the campaign
uses the photo suite made from the training photos, and world scenes outside both the training
range and ``world-heldout``): choosing on the held-out items themselves would report a gain that
partly is the choice fitting their noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixwizard.eval.paired import paired_tasks


@dataclass(frozen=True)
class Choice:
    task: str
    metric: str
    steps: int
    shifts: int
    gain: float  # mean paired gain over the reference, in the metric's units, positive = better
    se: float  # its standard error
    n: int


def parse_candidate(text: str) -> tuple[int, int, str]:
    """``STEPSxSHIFTS=RUN_DIR`` -> (steps, shifts, run_dir)."""
    sampling, sep, run = text.partition("=")
    steps, x, shifts = sampling.lower().partition("x")
    if not sep or not x or not steps.isdigit() or not shifts.isdigit() or not run:
        raise ValueError(f"a candidate is STEPSxSHIFTS=RUN_DIR (e.g. 2x4=EV/suite/model-steps2-shifts4), got {text!r}")
    if int(steps) < 1 or int(shifts) not in (1, 2, 4):
        raise ValueError(f"{text!r}: steps must be >= 1 and shifts 1, 2 or 4")
    return int(steps), int(shifts), run


def pick_sampling(ref_run: str | Path, candidates: list[tuple[int, int, str | Path]], *,
                  z: float = 1.64) -> tuple[dict[str, list[int]], list[Choice]]:
    """The table (task -> [steps, shifts]) of the tasks where a candidate beats the reference by
    more than ``z`` standard errors, and every task's best candidate (chosen or not)."""
    if not candidates:
        raise ValueError("give at least one candidate run")
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"z must be a finite number >= 0, got {z}")
    best: dict[str, Choice] = {}
    for steps, shifts, run in candidates:
        for t in paired_tasks(run, ref_run):
            sign = 1.0 if t.higher_is_better else -1.0
            d = sign * (np.asarray(t.new_values) - np.asarray(t.ref_values))
            se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
            c = Choice(t.task, t.metric, steps, shifts, float(d.mean()), se, len(d))
            if t.task not in best or c.gain > best[t.task].gain:
                best[t.task] = c
    table = {c.task: [c.steps, c.shifts] for c in best.values() if c.gain > z * c.se}
    return table, list(best.values())


def format_choices(choices: list[Choice], table: dict[str, list[int]], z: float) -> str:
    lines = ["| task | metric | best candidate | gain | standard error | n | chosen |", "|---|---|---|---|---|---|---|"]
    for c in choices:
        lines.append(f"| {c.task} | {c.metric} | {c.steps}x{c.shifts} | {c.gain:+.3f} | {c.se:.3f} | {c.n} | "
                     f"{'yes' if c.task in table else 'no'} |")
    lines.append(f"\n{len(table)} of {len(choices)} tasks get their own sampling (gain > {z:g} standard errors)")
    return "\n".join(lines) + "\n"
