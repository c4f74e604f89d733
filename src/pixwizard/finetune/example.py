"""The worked example's data (docs/finetune.md): a photo look the shipped model never saw.

``python -m pixwizard.finetune.example PHOTOS OUT --n 170 --crops 2 --size 128 [--look cast|sepia]``
takes ``n`` photos of the folder ``pixwizard data photos`` fetched (its packages' photo layouts),
``crops`` random crops of each, and writes ``OUT/pairs/LOOKNNNN__C_input.png`` (the degraded crop;
``LOOK`` is ``cast`` or ``old``), ``LOOKNNNN__C_target.png`` (the clean crop),
``OUT/pairs/instruction.txt`` and ``OUT/task.json`` (the look's task config).
The ``__`` groups a photo's crops, so the held-out split keeps whole photos out of training.

Looks, parameters drawn per pair:

* ``cast`` (default, task ``colour_cast_fix``): a colour cast (one of warm, cool, green, magenta:
  per-channel gains of 0.65-0.9 on one or two channels, 0.85-0.95 on a second one for warm and
  cool), a radial vignette darkening the corners by 30-60 % and a fade (contrast x 0.75-0.9
  towards mid-grey). Nothing clips and the chroma is kept, so the clean crop is recoverable from
  the input in principle (up to estimating the cast, as white balance does).
* ``sepia`` (task ``old_photo_restore``, the earlier example): a sepia tone mixed in at strength
  0.6-1.0, the same vignette and a fade with a warm lift. Sepia discards the colours, so the
  target is not determined by the input (restoring it is colourisation).

Neither is a shipped task: restoring them means undoing a colour transform the instruction bank
has no task for.
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
SEPIA_TASK = {"name": "old_photo_restore", "domain": "restoration", "codec": "image",
              "title": "Old-photo restoration (sepia, vignette, fade)",
              "phrasings": ["restore the old photo", "remove the sepia tone and the vignette",
                            "undo the faded vintage look", "bring back the original colours of this old photograph",
                            "make this aged sepia picture look like a normal photo",
                            "take away the brown tint and dark corners", "fix the faded old-photo effect",
                            "remove the vintage filter", "restore natural colours to the sepia photo",
                            "clean up the old sepia print look"]}
CAST_TASK = {"name": "colour_cast_fix", "domain": "restoration", "codec": "image",
             "title": "Colour-cast correction (tint, vignette, fade)",
             "phrasings": ["fix the colour cast", "remove the tint and the dark corners",
                           "correct the white balance", "undo the faded, tinted look",
                           "restore the natural colours of this photo", "take away the colour tint",
                           "remove the vignette and bring back the contrast",
                           "neutralise the warm or cool cast", "fix the washed-out tinted photo",
                           "make the colours look normal again"]}
TASK = CAST_TASK  # the default look's task
# tint -> per-channel (R, G, B) gain ranges; (1, 1) keeps the channel
TINTS = {"warm": ((1.0, 1.0), (0.85, 0.95), (0.65, 0.9)), "cool": ((0.65, 0.9), (0.85, 0.95), (1.0, 1.0)),
         "green": ((0.65, 0.9), (1.0, 1.0), (0.65, 0.9)), "magenta": ((1.0, 1.0), (0.65, 0.9), (1.0, 1.0))}


def old_photo(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64) / 255.0
    s = rng.uniform(0.6, 1.0)
    x = (1 - s) * x + s * np.clip(x @ SEPIA.T, 0, 1)
    x = vignette(x, rng)
    c = rng.uniform(0.75, 0.9)
    x = 0.5 + c * (x - 0.5) + np.array([0.04, 0.02, 0.0])
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def vignette(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)) / np.sqrt(2)
    return x * (1 - rng.uniform(0.3, 0.6) * r ** 2)[..., None]


def colour_cast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-pair tint (channel gains), vignette and fade; no value clips, the chroma stays."""
    x = img.astype(np.float64) / 255.0
    tint = list(TINTS)[int(rng.integers(len(TINTS)))]
    x = x * np.array([rng.uniform(lo, hi) for lo, hi in TINTS[tint]])
    x = vignette(x, rng)
    c = rng.uniform(0.75, 0.9)
    x = 0.5 + c * (x - 0.5)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


LOOKS = {"cast": (colour_cast, CAST_TASK, "cast"), "sepia": (old_photo, SEPIA_TASK, "old")}


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
                 crops: int = 2, look: str = "cast") -> Path:
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; expected one of {tuple(LOOKS)}")
    degrade, task, prefix = LOOKS[look]
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
            save_image(folder / f"{prefix}{i:04d}__{c}_target.png", target)
            save_image(folder / f"{prefix}{i:04d}__{c}_input.png", degrade(target, rng))
    (folder / "instruction.txt").write_text("\n".join(task["phrasings"][:8]) + "\n")
    (Path(out) / "task.json").write_text(json.dumps(task, indent=1))
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pixwizard.finetune.example", description=__doc__.split("\n")[0])
    p.add_argument("photos")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=170, help="photos")
    p.add_argument("--crops", type=int, default=2, help="crops per photo")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--look", choices=tuple(LOOKS), default="cast",
                   help="cast: tint + vignette + fade (recoverable); sepia: the earlier old-photo look")
    a = p.parse_args(argv)
    print(make_example(a.photos, a.out, a.n, a.size, a.seed, a.crops, a.look))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
