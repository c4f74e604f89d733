"""Photo fetching from Debian packages, with fake apt-get/dpkg (no network) and a fake tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixwizard.cli import UserError
from pixwizard.data.photos import (MARKER, PhotoFetchError, fetch_photos, list_photos, load_photo, split_photos,
                                   package_photos)


def _image(path: Path, w: int, h: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(w * 7 + h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format=fmt)
    return path


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)  # the test PATH holds only the fakes
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture()
def fake_tools(tmp_path, monkeypatch):
    """apt-get/dpkg stand-ins: `download` knows PKG only after `update`; dpkg -x writes images."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    payload = tmp_path / "payload"
    _image(payload / "usr/share/backgrounds/a.jpg", 200, 150)
    _image(payload / "usr/share/backgrounds/tiny.png", 40, 40)
    _script(bin_dir / "apt-get", f"""
echo "$@" >> {state}/calls
case "$1" in
  update) touch {state}/updated; exit 0;;
  download)
    if [ "$2" = "stale-pkg" ] && [ ! -f {state}/updated ]; then
      echo "E: Unable to locate package $2" >&2; exit 100; fi
    if [ "$2" = "no-such-pkg" ]; then echo "E: Unable to locate package $2" >&2; exit 100; fi
    echo deb > "$2_1.0_all.deb"; exit 0;;
esac
exit 1
""")
    _script(bin_dir / "dpkg", f"""
[ "$1" = "-x" ] || exit 2
mkdir -p "$3" && cp -r {payload}/. "$3"/ && echo x >> {state}/extracted
""")
    monkeypatch.setenv("PATH", str(bin_dir))
    return state


def _calls(state: Path) -> list[str]:
    f = state / "calls"
    return f.read_text().splitlines() if f.exists() else []


def test_missing_tools_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="apt-get and dpkg not found"):
        fetch_photos(tmp_path / "photos", packages=("opencv-doc",))


def test_already_extracted_packages_need_no_tools(tmp_path, monkeypatch):
    root = tmp_path / "photos" / "some-pkg"
    _image(root / "x.png", 300, 200)
    (root / MARKER).write_text("done\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert fetch_photos(tmp_path / "photos", packages=("some-pkg",)) == [root / "x.png"]


def test_fetch_downloads_extracts_and_is_idempotent(tmp_path, fake_tools):
    dest = tmp_path / "photos"
    first = fetch_photos(dest, packages=("good-pkg",))
    assert first == [dest / "good-pkg/usr/share/backgrounds/a.jpg"]
    assert (dest / "good-pkg" / MARKER).is_file()
    assert not list(dest.glob(".*.partial"))
    assert fetch_photos(dest, packages=("good-pkg",)) == first
    assert _calls(fake_tools) == ["download good-pkg"]  # second call downloaded nothing
    assert (fake_tools / "extracted").read_text().count("x") == 1


def test_relative_destination_lands_under_the_working_directory(tmp_path, fake_tools, monkeypatch):
    # dpkg runs inside the download folder: a relative target used to be resolved there (and fail)
    monkeypatch.chdir(tmp_path)
    photos = fetch_photos("data/photos", packages=("good-pkg",))
    assert photos == [tmp_path / "data/photos/good-pkg/usr/share/backgrounds/a.jpg"]
    assert photos[0].is_file()


def test_update_runs_once_when_lists_are_stale(tmp_path, fake_tools):
    photos = fetch_photos(tmp_path / "photos", packages=("stale-pkg", "good-pkg"))
    assert len(photos) == 2
    assert _calls(fake_tools) == ["download stale-pkg", "update", "download stale-pkg", "download good-pkg"]


def test_unknown_package_is_a_one_line_user_error(tmp_path, fake_tools):
    with pytest.raises(PhotoFetchError, match="apt-get download no-such-pkg failed: E: Unable to locate") as e:
        fetch_photos(tmp_path / "photos", packages=("no-such-pkg",))
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert _calls(fake_tools).count("update") == 1
    assert not (tmp_path / "photos" / "no-such-pkg").exists()


def test_list_photos_filters_and_sorts(tmp_path):
    root = tmp_path / "tree"
    keep = [_image(root / "b/photo.jpg", 200, 150), _image(root / "a/wide.png", 300, 130),
            _image(root / "c/pic.webp", 256, 256, "WEBP"), _image(root / "c/UPPER.JPG", 140, 140, "JPEG")]
    _image(root / "a/tiny.png", 64, 200)                   # short side < 128
    _image(root / "a/anim.gif", 300, 300)                  # not a photo format we take
    (root / "a/vector.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "a/broken.jpg").write_bytes(b"not a jpeg")
    os.symlink(root / "b/photo.jpg", root / "c/link.jpg")  # duplicate of photo.jpg
    os.symlink(root / "missing.jpg", root / "c/dangling.jpg")
    assert list_photos(root) == sorted(keep)
    assert list_photos(root, min_side=150) == sorted([keep[0], keep[2]])
    with pytest.raises(FileNotFoundError):
        list_photos(tmp_path / "nope")


def test_package_layouts_pick_the_photo_folders(tmp_path):
    kde = tmp_path / "plasma-workspace-wallpapers"
    big = _image(kde / "usr/share/wallpapers/Leaf/contents/images/1920x1080.png", 384, 216)
    _image(kde / "usr/share/wallpapers/Leaf/contents/images/1280x800.png", 256, 160)
    _image(kde / "usr/share/wallpapers/Leaf/contents/screenshot.png", 400, 250)
    dark = _image(kde / "usr/share/wallpapers/Leaf/contents/images_dark/1920x1080.png", 384, 216)
    assert package_photos(kde, "plasma-workspace-wallpapers") == [big, dark]
    doc = tmp_path / "opencv-doc"
    sample = _image(doc / "usr/share/doc/opencv-doc/examples/data/fruits.jpg", 200, 200)
    _image(doc / "usr/share/doc/opencv-doc/opencv4/html/diagram.png", 400, 300)
    assert package_photos(doc, "opencv-doc") == [sample]


def test_load_photo_returns_rgb(tmp_path):
    p = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((20, 30, 4), np.uint8)).save(p)
    img = load_photo(p)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    with pytest.raises(FileNotFoundError):
        load_photo(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"xx")
    with pytest.raises(ValueError, match="cannot read image"):
        load_photo(tmp_path / "bad.png")


def test_split_links_every_nth_photo_into_heldout_and_is_repeatable(tmp_path):
    photos = []
    for name in ("d.jpg", "a.png", "c.jpg", "b.jpg", "e.webp"):
        _image(tmp_path / "src" / name, 300, 200)
        photos.append(tmp_path / "src" / name)
    train, heldout = split_photos(photos, tmp_path / "out", heldout_every=2)
    assert [p.resolve().name for p in heldout] == ["b.jpg", "d.jpg"]  # 2nd and 4th in sorted order
    assert [p.resolve().name for p in train] == ["a.png", "c.jpg", "e.webp"]
    assert list_photos(tmp_path / "out" / "heldout") == heldout  # listed in split order
    assert split_photos(list(reversed(photos)), tmp_path / "out", heldout_every=2) == (train, heldout)
    with pytest.raises(ValueError, match="holds another split"):
        split_photos(photos[:4], tmp_path / "out", heldout_every=2)
    with pytest.raises(ValueError, match="heldout_every"):
        split_photos(photos, tmp_path / "x", heldout_every=1)
