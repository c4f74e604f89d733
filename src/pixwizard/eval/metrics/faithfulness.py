"""Faithfulness of a generated world image to its scene: colour at the right place (no hub weights)."""

from __future__ import annotations

import numpy as np


def colour_position_accuracy(pred: np.ndarray, reference: np.ndarray, instances: np.ndarray,
                             colours: list[str], min_pixels: int = 12) -> float:
    """Fraction of the scene's objects that the output shows in the right colour at the right place.

    ``reference`` is the ground-truth render, ``instances`` its HxW instance ids (object ``i`` =
    id ``i + 1``, 0 = ground/wall), ``colours[i]`` object ``i``'s colour name. Reference colours are
    the mean RGB of the render over all pixels of the objects of each colour name, plus one for the
    background (id 0). An object with at least ``min_pixels`` visible pixels counts as correct when
    the output's mean RGB inside its ground-truth mask is nearest (Euclidean) to the reference
    colour of its own colour name. Chance is about 1 / (distinct colours + 1). Raises ValueError
    when no object is visible.
    """
    pred = pred.astype(np.float64)
    ref = reference.astype(np.float64)
    names = sorted(set(colours))
    refs, labels = [], []
    for name in names:
        sel = np.isin(instances, [i + 1 for i, c in enumerate(colours) if c == name])
        if sel.any():
            refs.append(ref[sel].mean(axis=0))
            labels.append(name)
    if (instances == 0).any():
        refs.append(ref[instances == 0].mean(axis=0))
        labels.append("<background>")
    table = np.stack(refs) if refs else np.zeros((0, 3))
    hits = total = 0
    for i, name in enumerate(colours):
        sel = instances == i + 1
        if int(sel.sum()) < min_pixels:
            continue
        mean = pred[sel].mean(axis=0)
        total += 1
        hits += labels[int(np.argmin(np.linalg.norm(table - mean, axis=1)))] == name
    if total == 0:
        raise ValueError("colour_position_accuracy: no object is visible in the ground truth")
    return hits / total
