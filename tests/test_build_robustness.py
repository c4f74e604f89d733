"""`pixwizard data build` robustness (issue 10, items 15, 16, 19): an --out that is a file, a second
build into the same folder, shards whose bytes changed at the same size, workers outliving a
killed build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixwizard.cli import main
from pixwizard.data.builder import TaskBackend, Toolkit, build_dataset, folder_lock
from pixwizard.data.sample import Sample
from pixwizard.data.shards import shard_name
from test_builder import FAKE_TASKS, _image_codec, _instruction, _list_photos, _prepare, _recipe, fake_toolkit

TESTS = Path(__file__).parent


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"good{i}.png"), rng.integers(0, 256, (48, 56, 3), dtype=np.uint8))
    return folder


def test_out_that_is_a_file_is_one_line(tmp_path, photos, capsys):
    out = tmp_path / "a-file"
    out.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        build_dataset(_recipe(photos), out, toolkit_factory=fake_toolkit)
    rc = main(["data", "build", "--out", str(out), "--photos", str(photos), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "is a file" in err, err


def test_a_second_build_into_the_same_folder_refuses_and_keeps_the_first_ones_temp_file(tmp_path, photos):
    out = tmp_path / "ds"
    out.mkdir()
    temp = out / (shard_name(0) + ".tmp-12345")
    temp.write_bytes(b"the first build is writing this")
    with folder_lock(out):  # the first build, still running
        with pytest.raises(ValueError, match="another data build"):
            build_dataset(_recipe(photos), out, toolkit_factory=fake_toolkit)
        assert temp.read_bytes() == b"the first build is writing this"
    manifest = build_dataset(_recipe(photos), out, toolkit_factory=fake_toolkit)  # once it is done
    assert manifest["complete"] and not temp.exists()


def test_resume_remakes_a_shard_whose_bytes_changed_at_the_same_size(tmp_path, photos):
    out = tmp_path / "ds"
    build_dataset(_recipe(photos), out, toolkit_factory=fake_toolkit)
    shard = out / shard_name(0)
    good = shard.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    shard.write_bytes(bytes(flipped))
    build_dataset(_recipe(photos), out, toolkit_factory=fake_toolkit)
    assert shard.read_bytes() == good


# ----------------------------------------------------------------------------- 16: no orphans


def _slow(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    marks = Path(os.environ["PIXWIZARD_TEST_MARKS"])
    (marks / str(os.getpid())).write_text("")
    time.sleep(120)
    return Sample("slow", clean, truth={"image": clean})


def slow_toolkit() -> Toolkit:
    tasks = dict(FAKE_TASKS, slow=TaskBackend("slow", "restoration", "photo", _slow, _image_codec))
    return Toolkit(tasks=tasks, make_instruction=_instruction, prepare_photo=_prepare, list_photos=_list_photos)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie waits for a reaper: it runs nothing


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _survivors_of_sigkill(proc: subprocess.Popen, family: set[int], seconds: float = 15) -> list[int]:
    """SIGKILL ``proc``, then wait up to ``seconds`` for ``family`` to end; the pids still running."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + seconds
    while any(_alive(p) for p in family) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in family if _alive(p)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_a_killed_build(tmp_path, photos):
    marks = tmp_path / "marks"
    marks.mkdir()
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from pathlib import Path
        from pixwizard.data.builder import build_dataset
        from pixwizard.data.recipe import MixtureSpec
        from test_builder import _recipe
        from test_build_robustness import slow_toolkit
        recipe = _recipe(Path({str(photos)!r}), tasks={{"slow": 2}}, mixture=MixtureSpec(stage="counts"),
                         items_per_shard=1)
        build_dataset(recipe, Path({str(tmp_path / 'ds')!r}), workers=2, toolkit_factory=slow_toolkit)
    """)
    env = dict(os.environ, PIXWIZARD_TEST_MARKS=str(marks), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 90
        while len(list(marks.iterdir())) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None and len(list(marks.iterdir())) == 2, "the workers did not start"
        workers = [int(p.name) for p in marks.iterdir()]
        family = set(_children(proc.pid)) | set(workers)  # the workers and the resource tracker
        assert set(workers) <= family and len(family) >= 2
        assert not _survivors_of_sigkill(proc, family), "processes outlived the killed build"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in [int(m.name) for m in marks.iterdir()]:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
