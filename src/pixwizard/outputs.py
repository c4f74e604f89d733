"""Writing a result's typed outputs beside its image, with stated conventions.

For an output ``NAME.png``: ``NAME.mask.png`` (0/255), ``NAME.boxes.json`` (xyxy pixels, x2/y2
exclusive), ``NAME.depth.npy`` (float32 metres) and ``NAME.depth16.png`` (uint16 millimetres,
0 = no value), ``NAME.normals.npy`` (float32 unit vectors, camera frame: x right, y up, z toward
the camera), ``NAME.labels.png`` (class ids, 8-bit when they fit, else 16-bit). Every file is
written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixwizard.imageio import _atomic_write, save_array_npy, save_image, save_png16
from pixwizard.tasks.codecs import Decoded


def write_typed_outputs(image_path: str | Path, decoded: Decoded | None, task: str | None) -> dict[str, Path]:
    """Write the typed fields of ``decoded`` beside ``image_path``; returns {kind: path}."""
    if decoded is None:
        return {}
    base = Path(image_path)
    stem = base.with_suffix("")
    written: dict[str, Path] = {}
    if decoded.mask is not None:
        written["mask"] = save_image(f"{stem}.mask.png", decoded.mask.astype(bool))
    if decoded.boxes is not None:
        doc = {"task": task, "format": "xyxy pixels, x2/y2 exclusive", "boxes": decoded.boxes}
        data = json.dumps(doc, indent=2).encode()
        written["boxes"] = _atomic_write(f"{stem}.boxes.json", lambda f: f.write(data))
    if decoded.depth is not None:
        depth = decoded.depth.astype(np.float32)
        written["depth"] = save_array_npy(f"{stem}.depth.npy", depth)
        mm = np.where(np.isfinite(depth), np.clip(np.round(depth * 1000), 0, 65535), 0).astype(np.uint16)
        written["depth16"] = save_png16(f"{stem}.depth16.png", mm)
    if decoded.normals is not None:
        written["normals"] = save_array_npy(f"{stem}.normals.npy", decoded.normals.astype(np.float32))
    if decoded.labels is not None:
        labels = decoded.labels
        written["labels"] = (save_image(f"{stem}.labels.png", labels.astype(np.uint8)) if labels.max(initial=0) < 256
                             else save_png16(f"{stem}.labels.png", labels.astype(np.uint16)))
    return written
