"""The worked example's data (docs/finetune.md): an "old photo" look the shipped model never saw.

``python -m pixwizard.finetune.example PHOTOS OUT --n 170 --crops 2 --size 128`` takes ``n`` photos
of the folder ``pixwizard data photos`` fetched (its packages' photo layouts), ``crops`` random
crops of each, and writes ``OUT/pairs/oldNNNN__C_input.png`` (the degraded crop),
``oldNNNN__C_target.png`` (the clean crop), ``OUT/pairs/instruction.txt`` and ``OUT/task.json``.
The ``__`` groups a photo's crops, so the held-out split keeps whole photos out of training.

The degradation, parameters drawn per pair: a sepia tone mixed in at strength 0.6-1.0, a radial
vignette darkening the corners by 30-60 %, and a fade (contrast x 0.75-0.9 towards mid-grey with
a warm lift). Restoring it means undoing a colour transform the instruction bank has no task for.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from pixwizard.data.photos import DEFAULT_PACKAGES, list_photos, load_photo, package_photos
from pixwizard.imageio import save_image

SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
TASK = {"name": "old_photo_restore", "domain": "restoration", "codec": "image",
        "title": "Old-photo restoration (sepia, vignette, fade)",
        "phrasings": ["restore the old photo", "remove the sepia tone and the vignette",
                      "undo the faded vintage look", "bring back the original colours of this old photograph",
                      "make this aged sepia picture look like a normal photo",
                      "take away the brown tint and dark corners", "fix the faded old-photo effect",
                      "remove the vintage filter", "restore natural colours to the sepia photo",
                      "clean up the old sepia print look"]}


def old_photo(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    s = rng.uniform(0.6, 1.0)
    x = (1 - s) * x + s * np.clip(x @ SEPIA.T, 0, 1)
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)) / np.sqrt(2)
    x *= (1 - rng.uniform(0.3, 0.6) * r ** 2)[..., None]
    c = rng.uniform(0.75, 0.9)
    x = 0.5 + c * (x - 0.5) + np.array([0.04, 0.02, 0.0])
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = size * rng.uniform(1.0, 1.6) / min(h, w)
    small = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, small.shape[0] - size + 1))
    x = int(rng.integers(0, small.shape[1] - size + 1))
    return small[y:y + size, x:x + size]


def source_photos(photos: str | Path) -> list[Path]:
    """The photos of the packages ``pixwizard data photos`` fetched (their layouts skip icons and
    duplicates at other sizes); any image under ``photos`` when it holds none of them."""
    root = Path(photos)
    found = [p for pkg in DEFAULT_PACKAGES if (root / pkg).is_dir() for p in package_photos(root / pkg, pkg)]
    return found or list_photos(root)


def make_example(photos: str | Path, out: str | Path, n: int = 170, size: int = 128, seed: int = 0,
                 crops: int = 2) -> Path:
    found = source_photos(photos)
    if len(found) < n:
        raise ValueError(f"{photos} has {len(found)} usable photos, fewer than --n {n}")
    rng = np.random.default_rng(seed)
    chosen = [found[i] for i in sorted(rng.permutation(len(found))[:n].tolist())]
    folder = Path(out) / "pairs"
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(chosen):
        photo = load_photo(path)
        for c in range(crops):
            target = crop(photo, size, rng)
            save_image(folder / f"old{i:04d}__{c}_target.png", target)
            save_image(folder / f"old{i:04d}__{c}_input.png", old_photo(target, rng))
    (folder / "instruction.txt").write_text("\n".join(TASK["phrasings"][:8]) + "\n")
    (Path(out) / "task.json").write_text(json.dumps(TASK, indent=1))
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pixwizard.finetune.example", description=__doc__.split("\n")[0])
    p.add_argument("photos")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=170, help="photos")
    p.add_argument("--crops", type=int, default=2, help="crops per photo")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(make_example(a.photos, a.out, a.n, a.size, a.seed, a.crops))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
