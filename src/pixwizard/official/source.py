"""Read a released PixWizard checkpoint without unpickling anything but its tensors and arguments.

Layouts accepted (a folder, or a file inside one):
- the release: ``model_args.pth`` (a pickled ``argparse.Namespace``) and
  ``consolidated_ema.00-of-01.pth`` (or ``consolidated.00-of-01.pth``), a plain state dict;
- a safetensors export of that state dict (``*.safetensors``), with ``model_args.pth`` or
  ``model_args.json`` beside it when there is one;
- the reference fixture: ``model_args.json`` (``{"constructor": {...}, "base_seqlen": N}``) and
  ``official_state_dict.safetensors``.

``model_args.pth`` is read with ``weights_only=True`` and only ``argparse.Namespace`` allow-listed;
state dicts with ``weights_only=True`` (memory-mapped when the file allows, so tensors are read
as they are converted). Anything else in a pickle is refused.
"""

from __future__ import annotations

import argparse
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

STATE_NAMES = ("consolidated_ema.00-of-01.pth", "consolidated.00-of-01.pth")
FIXTURE_STATE = "official_state_dict.safetensors"
_ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


@dataclass
class OfficialSource:
    """An opened official checkpoint: its arguments and lazily read tensors."""

    path: Path  # the state-dict file
    args: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, torch.dtype]
    _get: Any = field(repr=False, default=None)
    _close: Any = field(repr=False, default=None)

    def tensor(self, name: str) -> torch.Tensor:
        return self._get(name)

    def close(self) -> None:
        if self._close is not None:
            self._close()

    def __enter__(self) -> "OfficialSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_model_args(path: Path) -> dict[str, Any]:
    """``model_args.pth`` (Namespace only) or ``model_args.json`` -> a flat dict of arguments."""
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is not readable JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object")
        args = dict(data.get("constructor", {}))
        args.update({k: v for k, v in data.items() if not isinstance(v, dict)})
        return args
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ns = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} holds more than an argparse.Namespace; refusing to unpickle it ({first})") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a readable torch file ({' '.join(str(e).split())[:200]})") from None
    if isinstance(ns, argparse.Namespace):
        return dict(vars(ns))
    if isinstance(ns, dict):
        return dict(ns)
    raise ValueError(f"{path} holds a {type(ns).__name__}, expected the training arguments (argparse.Namespace)")


def _open_pth(path: Path):
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is not a plain state dict; refusing to unpickle it ({first})") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path} is not a readable torch file (truncated or damaged: "
                         f"{' '.join(str(e).split())[:200]})") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return ({k: tuple(v.shape) for k, v in sd.items()}, {k: v.dtype for k, v in sd.items()},
            sd.__getitem__, sd.clear)


def _open_safetensors(path: Path):
    from safetensors import safe_open

    try:
        f = safe_open(str(path), framework="pt")
        keys = list(f.keys())
        slices = {k: f.get_slice(k) for k in keys}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    shapes = {k: tuple(s.get_shape()) for k, s in slices.items()}
    dtypes = {k: _ST_DTYPES.get(s.get_dtype(), s.get_dtype()) for k, s in slices.items()}
    return shapes, dtypes, f.get_tensor, lambda: None


def _find(folder: Path) -> tuple[Path, Path | None]:
    """(state-dict file, arguments file or None) in ``folder``."""
    args = next((folder / n for n in ("model_args.pth", "model_args.json") if (folder / n).is_file()), None)
    for name in STATE_NAMES + (FIXTURE_STATE,):
        if (folder / name).is_file():
            return folder / name, args
    shards = sorted(folder.glob("consolidated*.pth"))
    if shards:
        raise ValueError(f"{folder} holds model-parallel shards ({', '.join(p.name for p in shards[:3])}); "
                         "only the single-file release (*.00-of-01.pth) is supported")
    exports = sorted(folder.glob("*.safetensors"))
    if len(exports) == 1:
        return exports[0], args
    if len(exports) > 1:
        raise ValueError(f"{folder} holds several safetensors files; pass the one to convert")
    what = "model_args.pth but no consolidated_ema.00-of-01.pth" if args else "no official checkpoint files"
    raise ValueError(f"{folder} has {what} (expected model_args.pth + consolidated_ema.00-of-01.pth, "
                     f"a safetensors export, or model_args.json + {FIXTURE_STATE})")


def open_official(path: str | Path, *, read_args: bool = True) -> OfficialSource:
    """Open an official checkpoint folder or state-dict file (see the module docstring).
    ``read_args=False`` ignores the arguments file (sizes come from the tensors; the kept semantic
    tokens default to the release's 256)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"official checkpoint not found: {p}")
    if p.is_dir():
        state, args_file = _find(p)
    else:
        state = p
        args_file = next((p.parent / n for n in ("model_args.pth", "model_args.json")
                          if (p.parent / n).is_file()), None)
    args = read_model_args(args_file) if args_file is not None and read_args else {}
    if state.suffix == ".safetensors":
        shapes, dtypes, get, close = _open_safetensors(state)
    elif state.suffix in (".pth", ".pt", ".bin"):
        shapes, dtypes, get, close = _open_pth(state)
    else:
        raise ValueError(f"{state}: expected a .pth state dict or a .safetensors export")
    bad = sorted({str(d) for d in dtypes.values()} - {"torch.float32", "torch.bfloat16", "torch.float16"})
    if bad:
        raise ValueError(f"{state} holds tensors of dtype {', '.join(bad)}; expected float32, bfloat16 or float16")
    return OfficialSource(state, args, shapes, dtypes, get, close)
