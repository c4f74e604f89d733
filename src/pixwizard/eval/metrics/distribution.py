"""FID and KID between a folder of real and a folder of generated images, through torchmetrics.

Conventions:
- features: Inception-v3 pool features (2048-d, the ``inception-v3-compat`` network of
  torch-fidelity, which resizes every image to 299x299 itself) computed ONCE per image, then fed to
  torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance``; images are uint8 RGB;
- KID: polynomial-kernel MMD (degree 3) averaged over ``kid_subsets`` random subsets of
  ``min(kid_subset_size, n_real, n_fake)`` images, reported as mean and std; the subsets are
  drawn from a torch RNG seeded with ``seed`` inside ``torch.random.fork_rng`` (the global RNG
  is left as it was);
- nothing is downloaded: the Inception weights must be a local file
  (``weights_path`` or the ``PIXWIZARD_INCEPTION_WEIGHTS`` environment variable) and torchmetrics
  and torch-fidelity must be installed, else ``MetricUnavailable`` is raised;
- ``feature=`` replaces Inception by any ``torch.nn.Module`` mapping a uint8 [N, 3, H, W] tensor
  to [N, D] features (a trained-here encoder, or a tiny network in tests); such scores are not
  comparable with published FID numbers.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._checks import as_rgb_uint8
from .errors import MetricUnavailable

INCEPTION_WEIGHTS_ENV = "PIXWIZARD_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # torch-fidelity's file name
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_INSTALL_HINT = (f"install torchmetrics and torch-fidelity (pip install torchmetrics torch-fidelity) "
                 f"and place the Inception weights ({INCEPTION_WEIGHTS_FILE}) in a local file given "
                 f"as weights_path or by ${INCEPTION_WEIGHTS_ENV}")


@dataclass(frozen=True)
class FidKid:
    fid: float
    kid_mean: float
    kid_std: float
    n_real: int
    n_fake: int


class _Precomputed(torch.nn.Module):
    """Identity 'feature extractor' so torchmetrics receives features computed once."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _inception(weights_path: str | Path | None) -> torch.nn.Module:
    if importlib.util.find_spec("torchmetrics") is None or importlib.util.find_spec("torch_fidelity") is None:
        raise MetricUnavailable(f"FID skipped: torchmetrics/torch-fidelity not installed; {_INSTALL_HINT}")
    path = weights_path if weights_path is not None else os.environ.get(INCEPTION_WEIGHTS_ENV)
    if path is None or not Path(path).is_file():
        where = "no path given" if path is None else f"no file at {path}"
        raise MetricUnavailable(f"FID skipped: Inception weights not available offline ({where}); {_INSTALL_HINT}")
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path))


class FidKidAccumulator:
    """Accumulates features of real and generated images; ``compute()`` -> FidKid."""

    def __init__(self, feature: torch.nn.Module | None = None, weights_path: str | Path | None = None,
                 kid_subset_size: int = 1000, kid_subsets: int = 100, seed: int = 0) -> None:
        if importlib.util.find_spec("torchmetrics") is None:
            raise MetricUnavailable(f"FID skipped: torchmetrics not installed; {_INSTALL_HINT}")
        self.extractor = (feature if feature is not None else _inception(weights_path)).eval()
        self.kid_subset_size = kid_subset_size
        self.kid_subsets = kid_subsets
        self.seed = seed
        self._real: list[torch.Tensor] = []
        self._fake: list[torch.Tensor] = []

    @torch.no_grad()
    def _features(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.array(as_rgb_uint8(image, "image"))).permute(2, 0, 1)[None]
        feats = self.extractor(x)
        if feats.ndim != 2 or feats.shape[0] != 1:
            raise ValueError(f"feature extractor must return [N, D] features, got {tuple(feats.shape)}")
        return feats.double()

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one generated image (``pred``) and one real image (``target``)."""
        self.add(pred, real=False)
        self.add(target, real=True)

    def add(self, image: np.ndarray, real: bool) -> None:
        (self._real if real else self._fake).append(self._features(image))

    def compute(self) -> FidKid:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        n_real, n_fake = len(self._real), len(self._fake)
        if min(n_real, n_fake) < 2:
            raise ValueError(f"FID/KID need at least 2 real and 2 generated images, got {n_real} and {n_fake}")
        real, fake = torch.cat(self._real), torch.cat(self._fake)
        dim = real.shape[1]
        fid = FrechetInceptionDistance(feature=_Precomputed(dim), reset_real_features=False)
        with warnings.catch_warnings():  # KID keeps all features: expected, we hold them anyway
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            kid = KernelInceptionDistance(feature=_Precomputed(dim), subsets=self.kid_subsets,
                                          subset_size=min(self.kid_subset_size, n_real, n_fake),
                                          reset_real_features=False)
        for metric in (fid, kid):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        return FidKid(fid=float(fid.compute()), kid_mean=float(kid_mean), kid_std=float(kid_std),
                      n_real=n_real, n_fake=n_fake)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def fid_kid(real_dir: str | Path, fake_dir: str | Path, *, feature: torch.nn.Module | None = None,
            weights_path: str | Path | None = None, kid_subset_size: int = 1000,
            kid_subsets: int = 100, seed: int = 0) -> FidKid:
    """FID and KID between the images in ``real_dir`` and ``fake_dir`` (see module conventions)."""
    real_files, fake_files = list_images(real_dir), list_images(fake_dir)
    acc = FidKidAccumulator(feature=feature, weights_path=weights_path, kid_subset_size=kid_subset_size,
                            kid_subsets=kid_subsets, seed=seed)
    for path in real_files:
        acc.add(_read_rgb(path), real=True)
    for path in fake_files:
        acc.add(_read_rgb(path), real=False)
    return acc.compute()
