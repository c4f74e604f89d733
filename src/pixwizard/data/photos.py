"""Real photographs from Debian packages, fetched without installing anything.

``fetch_photos(dest)`` runs ``apt-get download PKG`` in a temporary folder and unpacks the
.deb with ``dpkg -x`` into ``dest/PKG`` (no root, no install scripts), then lists the usable
images. Each package folder is written atomically (unpacked into ``dest/.PKG.partial`` and
renamed) and marked done with ``MARKER``; an existing marker makes the package a no-op, so
the call is idempotent and resumable. ``apt-get update`` is run at most once per call, and
only when a download fails because the package lists are missing or stale.

Only the folders named in ``PACKAGE_LAYOUTS`` are searched (the whole package otherwise).
Usable image: extension .jpg/.jpeg/.png/.webp (any case; SVG and others are skipped), a
regular file (symlinks are followed, duplicates of one target are listed once), readable by
Pillow, and at least ``MIN_SIDE`` px on its shorter side.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pixwizard.cli import UserError

DEFAULT_PACKAGES = ("opencv-doc", "plasma-workspace-wallpapers", "lomiri-wallpapers", "gnome-backgrounds")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
MIN_SIDE = 128
MARKER = ".pixwizard-extracted"


@dataclass(frozen=True)
class PackageLayout:
    """Where a package keeps its pictures (paths relative to the unpacked package root)."""

    roots: tuple[str, ...] = ("",)       # folders to search ("" = the whole package)
    exclude: tuple[str, ...] = ()        # fnmatch patterns on file names (thumbnails, ...)
    largest_per_folder: bool = False     # each folder holds one picture at several resolutions


# opencv-doc: only the sample images (its HTML manual holds ~1100 diagrams and screenshots);
# KDE wallpapers: one folder per wallpaper with several resolutions and a thumbnail.
PACKAGE_LAYOUTS: dict[str, PackageLayout] = {
    "opencv-doc": PackageLayout(roots=("usr/share/doc/opencv-doc/examples",)),
    "plasma-workspace-wallpapers": PackageLayout(roots=("usr/share/wallpapers",), exclude=("screenshot.*",),
                                                 largest_per_folder=True),
    "lomiri-wallpapers": PackageLayout(roots=("usr/share/backgrounds",)),
    "gnome-backgrounds": PackageLayout(roots=("usr/share/backgrounds",)),
}
# apt-get messages meaning "the package lists do not know this package (yet)".
_MISSING_LIST = re.compile(r"Unable to locate package|has no installation candidate|"
                           r"Failed to fetch|404\s+Not Found|No packages found", re.IGNORECASE)


class PhotoFetchError(UserError):
    """A package could not be downloaded or unpacked (printed as one line by the CLI)."""


def _require_tools() -> dict[str, str]:
    tools = {name: shutil.which(name) for name in ("apt-get", "dpkg")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"{' and '.join(missing)} not found on PATH; fetching photos needs Debian's apt-get and dpkg "
            "(or put images in a folder yourself and use list_photos)")
    return {name: str(path) for name, path in tools.items()}


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


def _last_lines(text: str, n: int = 2) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "no output"


class _Apt:
    """apt-get download with at most one ``apt-get update`` per instance."""

    def __init__(self, apt_get: str) -> None:
        self.apt_get = apt_get
        self.updated = False

    def download(self, package: str, workdir: Path) -> Path:
        result = _run([self.apt_get, "download", package], workdir)
        if result.returncode != 0 and not self.updated and _MISSING_LIST.search(result.stderr + result.stdout):
            self.updated = True
            update = _run([self.apt_get, "update"], workdir)
            if update.returncode != 0:
                raise PhotoFetchError(f"apt-get update failed ({_last_lines(update.stderr)}); "
                                      f"cannot download {package}")
            result = _run([self.apt_get, "download", package], workdir)
        if result.returncode != 0:
            raise PhotoFetchError(f"apt-get download {package} failed: {_last_lines(result.stderr)}")
        debs = sorted(workdir.glob("*.deb"))
        if len(debs) != 1:
            raise PhotoFetchError(f"apt-get download {package} produced {len(debs)} .deb files, expected 1")
        return debs[0]


def _extract(dpkg: str, deb: Path, target: Path) -> None:
    """Unpack ``deb`` into ``target`` atomically and write the marker."""
    partial = target.parent / f".{target.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    result = _run([dpkg, "-x", str(deb), str(partial)], deb.parent)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise PhotoFetchError(f"dpkg -x {deb.name} failed: {_last_lines(result.stderr)}")
    (partial / MARKER).write_text(deb.name + "\n")
    if target.exists():  # an unmarked (interrupted or foreign) folder: replace it
        shutil.rmtree(target)
    partial.rename(target)


def fetch_photos(dest: Path | str, packages: Iterable[str] = DEFAULT_PACKAGES) -> list[Path]:
    """Download and unpack each Debian package into ``dest/PKG``; return the usable images.

    Packages already unpacked (``dest/PKG/MARKER`` exists) are not downloaded again. The list is
    the concatenation of ``package_photos(dest/PKG, PKG)`` in package order. Raises FileNotFoundError
    when apt-get or dpkg is missing and PhotoFetchError when a package cannot be fetched.
    """
    dest = Path(dest).resolve()  # dpkg runs in the download folder: a relative target would land there
    packages = list(packages)
    if not packages:
        raise ValueError("no packages given")
    pending = [p for p in packages if not (dest / p / MARKER).is_file()]
    if pending:
        tools = _require_tools()
        apt = _Apt(tools["apt-get"])
        dest.mkdir(parents=True, exist_ok=True)
        for package in pending:
            with tempfile.TemporaryDirectory(prefix="pixwizard-deb-") as tmp:
                _extract(tools["dpkg"], apt.download(package, Path(tmp)), dest / package)
    photos: list[Path] = []
    for package in packages:
        photos.extend(package_photos(dest / package, package))
    return photos


def split_photos(photos: Sequence[Path], dest: Path | str, heldout_every: int = 5) -> tuple[list[Path], list[Path]]:
    """Link every ``heldout_every``-th photo (1-based, in sorted path order) into ``dest/heldout``
    and the others into ``dest/train``; return the two lists of links.

    Links are named by the photo's index (``00042.jpg``), so both folders list in that order. A
    folder already made from the same photos is kept; one made from others is refused.
    """
    if heldout_every < 2:
        raise ValueError(f"heldout_every must be >= 2, got {heldout_every}")
    dest = Path(dest).resolve()
    ordered = sorted(Path(p).resolve() for p in photos)
    if not ordered:
        raise ValueError("no photos to split")
    plan: dict[str, list[tuple[str, Path]]] = {"train": [], "heldout": []}
    for i, photo in enumerate(ordered):
        part = "heldout" if (i + 1) % heldout_every == 0 else "train"
        plan[part].append((f"{i:05d}{photo.suffix.lower()}", photo))
    out: dict[str, list[Path]] = {}
    for part, items in plan.items():
        folder = dest / part
        wanted = {name: target for name, target in items}
        if folder.is_dir():
            have = {q.name: q.resolve() for q in folder.iterdir()}
            if have != wanted:
                raise ValueError(f"{folder} exists and holds another split; remove it to split again")
        else:
            partial = dest / f".{part}.partial"
            if partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True)
            for name, target in items:
                (partial / name).symlink_to(target)
            partial.rename(folder)
        out[part] = [folder / name for name, _ in items]
    return out["train"], out["heldout"]


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, or None if Pillow cannot read it."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None


def list_photos(directory: Path | str, min_side: int = MIN_SIDE, exclude: Sequence[str] = (),
                largest_per_folder: bool = False) -> list[Path]:
    """Usable images under ``directory`` (recursive), sorted by path; see the module docstring.

    ``exclude``: fnmatch patterns on file names to skip. ``largest_per_folder``: keep only the
    image with the most pixels in each folder (folders holding one picture at several sizes).
    A symlink and its target inside the tree are listed once (the real file is preferred).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"photo folder {directory} does not exist")
    by_target: dict[Path, tuple[Path, int]] = {}
    for path in sorted(directory.rglob("*"), key=lambda q: (q.is_symlink(), str(q))):
        if (path.suffix.lower() not in IMAGE_SUFFIXES or any(fnmatch(path.name, pat) for pat in exclude)
                or not path.is_file()):
            continue
        real = path.resolve()
        if real in by_target:
            continue
        size = image_size(path)
        if size is not None and min(size) >= min_side:
            by_target[real] = (path, size[0] * size[1])
    found = list(by_target.values())
    if largest_per_folder:
        best: dict[Path, tuple[Path, int]] = {}
        for path, pixels in found:
            if path.parent not in best or pixels > best[path.parent][1]:
                best[path.parent] = (path, pixels)
        found = list(best.values())
    return sorted(path for path, _ in found)


def package_photos(root: Path, package: str) -> list[Path]:
    """The usable images of one unpacked package, following its ``PACKAGE_LAYOUTS`` entry."""
    layout = PACKAGE_LAYOUTS.get(package, PackageLayout())
    photos: list[Path] = []
    for sub in layout.roots:
        if (root / sub).is_dir():
            photos.extend(list_photos(root / sub, exclude=layout.exclude,
                                      largest_per_folder=layout.largest_per_folder))
    return photos


def load_photo(path: Path | str) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (alpha dropped, palette/grey expanded)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
