"""Ray engines: ``data build --engine ray`` and ``eval --engine ray`` give the local engine's bytes.

One local Ray runtime for the module (``ray.init(num_cpus=2)``, nothing leaves the machine); tiny recipes with
the real generators, photos made in tmp_path (the shared-storage-path case of docs/ray.md).
"""

from __future__ import annotations

import ast
import functools
import json
import logging
import os
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray

from pixwizard.cli import main as cli_main
from pixwizard.data.builder import TaskBackend, Toolkit, build_dataset, default_toolkit
from pixwizard.data.engine_ray import build_dataset_ray
from pixwizard.data.recipe import MixtureSpec, Recipe
from pixwizard.data.shards import TMP_MARK

SIZE = 64


@pytest.fixture(scope="module")
def ray_local():
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)  # this machine only
    # the dying toolkit below lives in this test module, which Ray workers cannot import: ship it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()
    for sig, handler in handlers.items():  # ray.init installs its own; later tests expect theirs
        signal.signal(sig, handler)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Recipe:
    photos = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(photos / f"p{i}.png"), rng.integers(0, 256, (260, 300, 3), dtype=np.uint8))
    return Recipe(name="ray-test", tasks={"denoise": 1.0, "depth": 1.0, "t2i": 1.0},
                  mixture=MixtureSpec(stage="balanced", per_task=2), size=SIZE, seed=3, items_per_shard=2,
                  photo_dirs=(str(photos),))


@pytest.fixture(scope="module")
def local_build(recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    build_dataset(recipe, out, workers=1)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_ray_build_is_byte_identical_to_local_and_resumes(ray_local, recipe, local_build, tmp_path):
    out = tmp_path / "ray"
    manifest = build_dataset_ray(recipe, out)
    assert manifest["complete"] and manifest["counts"]["items"] == 6 and len(manifest["shards"]) == 3
    expected = _files(local_build)
    assert sorted(expected) == ["manifest.json"] + [f"shard-00000{i}.{e}" for i in range(3) for e in ("json", "tar")]
    assert _files(out) == expected
    # resume: a lost shard is rebuilt, finished ones are not touched
    (out / "shard-000001.tar").unlink()
    kept = (out / "shard-000000.tar").stat().st_mtime_ns
    build_dataset_ray(recipe, out)
    assert _files(out) == expected
    assert (out / "shard-000000.tar").stat().st_mtime_ns == kept


# ----------------------------------------------------------------------------- a worker dying mid-shard


def _dying(generate, marker: str, out: str, seen: dict):
    """``generate`` that kills its worker process at the 2nd item of a shard it is writing (its own
    temp tar exists and already holds an item), once across all processes (``marker``)."""

    def wrapped(*args):
        tmp = [p for p in Path(out).iterdir() if p.name.endswith(f"{TMP_MARK}{os.getpid()}")]
        if tmp:
            seen[tmp[0].name] = seen.get(tmp[0].name, 0) + 1
            if seen[tmp[0].name] >= 2:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.write(fd, json.dumps({"tmp": tmp[0].name, "bytes": tmp[0].stat().st_size}).encode())
                    os.close(fd)
                    os._exit(1)  # no cleanup, no exception: like an OOM kill
        return generate(*args)

    return wrapped


def dying_toolkit(marker: str, out: str) -> Toolkit:
    real = default_toolkit()
    seen: dict = {}
    tasks = {t: TaskBackend(b.task, b.domain, b.source, _dying(b.generate, marker, out, seen), b.encode)
             for t, b in real.tasks.items()}
    return Toolkit(tasks=tasks, make_instruction=real.make_instruction, prepare_photo=real.prepare_photo,
                   list_photos=real.list_photos, load_photo=real.load_photo, versions=real.versions)


def test_worker_killed_mid_shard_is_retried_and_output_identical(ray_local, recipe, local_build, tmp_path):
    out, marker = tmp_path / "ray", tmp_path / "killed.json"
    out.mkdir()
    build_dataset_ray(recipe, out, toolkit_factory=functools.partial(dying_toolkit, str(marker), str(out)))
    killed = json.loads(marker.read_text())  # a worker really died inside a shard ...
    assert killed["tmp"].startswith("shard-")  # (its temp tar held the 1st item: ~26 kB measured)
    assert _files(out) == _files(local_build)  # ... its task was retried: every shard, same bytes
    assert not [p for p in out.iterdir() if TMP_MARK in p.name]  # and no partial file is left


def test_cli_data_build_engine_ray(ray_local, recipe, local_build, tmp_path, capsys):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe.to_dict()))
    assert cli_main(["data", "build", "--recipe", str(path), "--out", str(tmp_path / "o"), "--engine", "ray",
                     "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["engine"] == "ray" and summary["items"] == 6
    assert _files(tmp_path / "o") == _files(local_build)
    assert cli_main(["data", "build", "--recipe", str(path), "--out", str(tmp_path / "p"), "--address", "x:1"]) == 2
    assert "--address needs --engine ray" in capsys.readouterr().err


def test_bench_data_engine_ray(ray_local):
    from pixwizard.data.bench_ray import bench_build_engines

    result = bench_build_engines(size=32, items_per_task=2, tasks=["t2i", "denoise"], workers=1)
    assert result["skipped"] == {"denoise": "no photos (pass --photos)"} and result["items"] == 2
    assert result["identical"] and result["ray"]["cluster_cpus"] == 2 and result["ray"]["nodes"] == 1
    for engine in ("local", "ray"):
        assert result[engine]["triplets_per_s"] > 0 and result[engine]["seconds"] > 0


# ----------------------------------------------------------------------------- eval


def _run_files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".png", ".npy") and p.name not in ("report.md", "grid.png")}


def test_eval_ray_identical_to_local_on_quick_suite(ray_local, tmp_path, capsys):
    common = ["eval", "--suite", "quick", "--model", "baseline:auto", "--limit", "1", "--no-progress",
              "--grid-per-task", "0"]
    assert cli_main(common + ["--out", str(tmp_path / "local")]) == 0
    assert cli_main(common + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--chunk-size", "8"]) == 0
    printed = capsys.readouterr().out
    assert "44 generated, 44 predicted, 0 reused, 0 failed" in printed.split("quick / baseline-auto:")[-1]
    local, remote = (_run_files(tmp_path / d / "quick" / "baseline-auto") for d in ("local", "ray"))
    assert len([k for k in local if k.endswith("output.png")]) == 44
    assert remote == local  # items, outputs, metrics.json, item_scores.json
    # a rerun on Ray reuses every item
    assert cli_main(common + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--chunk-size", "8"]) == 0
    assert "0 generated, 0 predicted, 44 reused" in capsys.readouterr().out


def _ray_imports(tree, in_function: bool = False):
    """(import of ray, inside a function?) for every import statement in an AST."""
    for node in ast.iter_child_nodes(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        yield from ((n, in_function) for n in names if n.split(".")[0] == "ray")
        yield from _ray_imports(node, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def test_ray_is_imported_lazily():
    """The default install has no Ray: no module imports it at load time, only inside functions."""
    import pixwizard

    found = [(path.name, name, inside) for path in Path(pixwizard.__file__).parent.rglob("*.py")
             for name, inside in _ray_imports(ast.parse(path.read_text()))]
    assert any(inside for *_, inside in found)  # the engines do use Ray ...
    assert [f for f in found if not f[2]] == []  # ... lazily
