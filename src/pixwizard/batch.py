"""Batch mode of ``pixwizard run``: many images into an output folder, resumable, with provenance.

``pixwizard run INPUT [INSTRUCTION] -o OUT_FOLDER`` where INPUT is

- a folder: every image file directly in it (sorted by name), all with INSTRUCTION;
- a glob pattern (quoted, ``**`` allowed): the matching image files, all with INSTRUCTION;
- a JSON Lines manifest (``*.jsonl``): one object per line with ``image`` (relative to the
  manifest's folder, or absolute), ``instruction`` (or INSTRUCTION as the default), and optionally
  ``task``, ``seed``, ``steps`` and ``output`` (a file name inside OUT_FOLDER).

Each result ``OUT/NAME.png`` (with its typed outputs, written as one set) gets a provenance sidecar
``OUT/NAME.provenance.json``, written atomically *after* the outputs: the model file's SHA-256 and
version, the instruction, the routed task and confidence, seed, steps, guidance, sampler, sizes and
timings. An item is finished when its sidecar exists and records the same request (input file,
instruction, settings, model); re-running the command skips finished items, so a killed run loses
nothing but the item in flight. Every item is checked before the model loads; an item that fails
while running is reported and retried on the next run (exit code 1).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SIDECAR_SUFFIX = ".provenance.json"
GLOB_CHARS = set("*?[")


@dataclass
class Item:
    """One image to run: where it comes from, what to do and where the result goes."""

    image: Path
    instruction: str
    output: Path
    seed: int
    steps: int | None = None
    task: str | None = None
    line: int | None = None  # manifest line number (for messages)

    @property
    def sidecar(self) -> Path:
        return self.output.with_suffix("").with_name(self.output.stem + SIDECAR_SUFFIX)


def is_batch_input(source: str) -> bool:
    """A folder, a glob pattern or a ``.jsonl`` manifest (anything else is one image file)."""
    return Path(source).is_dir() or source.endswith(".jsonl") or bool(GLOB_CHARS & set(source))


def _image_suffixes() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def _out_names(images: list[Path], folder: Path) -> list[Path]:
    """``NAME.png`` per input stem; inputs sharing a stem (a.jpg, a.png) keep their whole name."""
    stems = [p.stem for p in images]
    return [folder / (f"{p.stem}.png" if stems.count(p.stem) == 1 else f"{p.name}.png") for p in images]


def collect_items(source: str, instruction: str | None, out: Path, seed: int) -> list[Item]:
    """The items a batch source names, in a stable order (one-line errors for bad input)."""
    if source.endswith(".jsonl"):
        return _manifest_items(Path(source), instruction, out, seed)
    if instruction is None or not instruction.strip():
        raise ValueError("give the instruction for every image of the folder or pattern (or use a .jsonl manifest)")
    if Path(source).is_dir():
        found = [p for p in Path(source).iterdir() if p.is_file()]
    else:
        found = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    suffixes = _image_suffixes()
    inside_out = out.resolve()  # results of an earlier run under the pattern are not inputs
    images = sorted((p for p in found if p.suffix.lower() in suffixes and inside_out not in p.resolve().parents),
                    key=lambda p: str(p))
    if not images:
        raise ValueError(f"no image files in {source}")
    return [Item(p, instruction, o, seed) for p, o in zip(images, _out_names(images, out))]


def _manifest_items(manifest: Path, default_instruction: str | None, out: Path, seed: int) -> list[Item]:
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest}")
    items, rows = [], []
    for n, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("image"), str):
            raise ValueError(f'{manifest}:{n}: each line needs "image" (a path)')
        unknown = set(row) - {"image", "instruction", "task", "seed", "steps", "output"}
        if unknown:
            raise ValueError(f"{manifest}:{n}: unknown keys {sorted(unknown)}")
        rows.append((n, row))
    if not rows:
        raise ValueError(f"{manifest} has no items")
    images = [(manifest.parent / row["image"]) if not os.path.isabs(row["image"]) else Path(row["image"])
              for _, row in rows]
    stems = [p.stem for p in images]  # an image named twice gets its line number in the default name
    names = [out / (f"{p.stem}.png" if stems.count(p.stem) == 1 else f"{p.stem}-line{n}.png")
             for (n, _), p in zip(rows, images)]
    for (n, row), image, name in zip(rows, images, names):
        instruction = row.get("instruction", default_instruction)
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{manifest}:{n}: no instruction (give it on the line or on the command line)")
        for key in ("seed", "steps"):
            if key in row and (not isinstance(row[key], int) or isinstance(row[key], bool)):
                raise ValueError(f"{manifest}:{n}: {key} must be an integer")
        output = out / row["output"] if "output" in row else name
        if "output" in row and Path(row["output"]).is_absolute() or ".." in Path(row.get("output", "")).parts:
            raise ValueError(f"{manifest}:{n}: output must be a file name inside the output folder")
        items.append(Item(image, instruction, output, row.get("seed", seed), row.get("steps"), row.get("task"), n))
    outputs = [i.output for i in items]
    if len(set(outputs)) != len(outputs):
        dup = next(o for o in outputs if outputs.count(o) > 1)
        raise ValueError(f"{manifest}: two items write {dup}; give them different outputs")
    return items


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_provenance(pipe, checkpoint: str | None) -> dict:
    """The model file, its SHA-256 and the version/metadata it records."""
    from pixwizard import __version__
    from pixwizard.checkpoint import DEFAULT_CHECKPOINT, read_info
    from pixwizard.pipeline_args import checkpoint_file

    path = checkpoint_file(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    doc = {"file": str(path), "sha256": None, "pixwizard_version": __version__}
    if path.is_file():
        info = read_info(path)
        doc.update(sha256=file_sha256(path), version=info.extra.get("pixwizard_version"),
                   trained_samples=info.trained_samples)
    return doc


def request_of(item: Item, args: argparse.Namespace, model: dict) -> dict:
    """What decides an item's result: equal requests give equal outputs (the resume key)."""
    return {"image": str(item.image.resolve()), "image_bytes": item.image.stat().st_size,
            "image_mtime_ns": item.image.stat().st_mtime_ns, "instruction": item.instruction, "task": item.task,
            "seed": item.seed, "steps": item.steps, "text_guidance": args.text_guidance,
            "image_guidance": args.image_guidance, "size": args.size, "sampler": args.sampler,
            "typed": not args.no_typed, "model_sha256": model["sha256"], "precision": args.precision,
            "shifts": getattr(args, "shifts", None)} | tile_request(args)


def tile_request(args: argparse.Namespace) -> dict:
    """The tiling options of a request, only when tiles were asked for (older requests stay equal)."""
    tile = getattr(args, "tile", None)
    return {} if tile is None else {"tile": tile, "tile_overlap": getattr(args, "tile_overlap", None)}


def provenance(result, *, image_path, output: Path, written: dict, model: dict, pipe, timings: dict,
               request: dict | None = None) -> dict:
    """The sidecar document of one result (also what ``run --json`` prints)."""
    from pixwizard import __version__

    flow = pipe.config.flow
    route = result.route
    h, w = result.image.shape[:2] if hasattr(result.image, "shape") else result.image.size[::-1]
    return {
        "pixwizard_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "input": {"path": str(image_path), "size": [w, h]},
        "instruction": result.instruction,
        "task": result.task,
        "routing": None if route is None else {
            "task": route.task, "confidence": round(route.confidence, 4), "low_confidence": route.low_confidence,
            "no_match": route.no_match, "alternatives": [[t, round(p, 4)] for t, p in route.alternatives]},
        "seed": result.seed,
        "steps": result.steps,
        "text_guidance": flow.text_guidance if request is None or request["text_guidance"] is None
        else request["text_guidance"],
        "image_guidance": flow.image_guidance if request is None or request["image_guidance"] is None
        else request["image_guidance"],
        "sampler": (request or {}).get("sampler") or flow.sampler,
        "working_size": [result.working_size[1], result.working_size[0]],
        "tiles": getattr(result, "tiles", 1),
        "output": {"path": str(output), "size": [w, h],
                   "typed": {k: str(p) for k, p in written.items() if k != "image"}},
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "notes": list(result.notes),
        "request": request,
    }


def _finished(item: Item, request: dict) -> bool:
    try:
        doc = json.loads(item.sidecar.read_text())
    except (OSError, ValueError):
        return False
    return doc.get("request") == request and item.output.is_file()


def _write_json(path: Path, doc: dict) -> None:
    from pixwizard.imageio import _atomic_write

    data = (json.dumps(doc, indent=2) + "\n").encode()
    _atomic_write(path, lambda f: f.write(data))


def run_batch(args: argparse.Namespace) -> int:
    """``pixwizard run`` over a folder, pattern or manifest (see the module doc)."""
    from tqdm import tqdm

    from pixwizard.outputs import check_run_options

    if not args.output:
        raise ValueError("batch mode needs -o OUTPUT_FOLDER")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder; batch mode writes into a folder")
    items = collect_items(args.image, args.instruction, out, args.seed)
    for item in items:  # every check that needs no model, before the model loads
        where = f"line {item.line}: " if item.line else ""
        try:
            check_run_options(argparse.Namespace(**{**vars(args), "image": str(item.image), "instruction": item.instruction,
                                                    "output": str(item.output), "seed": item.seed,
                                                    "steps": item.steps if item.steps is not None else args.steps,
                                                    "task": item.task if item.task is not None else args.task}))
        except (ValueError, OSError) as e:
            raise type(e)(f"{where}{e}") from None
    for item in items:
        item.steps = item.steps if item.steps is not None else args.steps
        item.task = item.task if item.task is not None else args.task
    out.mkdir(parents=True, exist_ok=True)

    t_load = time.perf_counter()
    pipe = _load_pipeline(args)
    load_s = time.perf_counter() - t_load
    model = model_provenance(pipe, args.checkpoint)
    requests = [request_of(i, args, model) for i in items]
    todo = [(i, r) for i, r in zip(items, requests) if not _finished(i, r)]
    skipped = len(items) - len(todo)
    failed: list[tuple[Item, str]] = []
    bar = tqdm(total=len(items), initial=skipped, unit="image", desc="pixwizard run", file=sys.stderr,
               disable=getattr(args, "json", False) or None)
    for item, request in todo:
        try:
            _run_item(pipe, item, request, args, model, load_s)
        except (ValueError, OSError) as e:
            failed.append((item, " ".join(str(e).split())))
            bar.write(f"failed: {item.image}: {failed[-1][1]}", file=sys.stderr)
        bar.update(1)
    bar.close()
    summary = {"items": len(items), "ran": len(todo) - len(failed), "skipped": skipped, "failed": len(failed),
               "output": str(out), "model_load_s": round(load_s, 3),
               "failures": [{"image": str(i.image), "error": msg} for i, msg in failed]}
    if getattr(args, "json", False):
        print(json.dumps(summary))
    else:
        print(f"{summary['ran']} written, {skipped} already done, {len(failed)} failed -> {out}")
    return 1 if failed else 0


def _load_pipeline(args: argparse.Namespace):
    from pixwizard.pipeline import UNTRAINED_WARNING, PixWizardPipeline

    pipe = PixWizardPipeline.from_pretrained(args.checkpoint, device=args.device, precision=args.precision)
    if getattr(args, "adapter", None) or getattr(args, "adapter_name", None) or getattr(args, "merge_adapter", False):
        from pixwizard.finetune.adapters import apply_adapters

        print(f"adapter: {apply_adapters(pipe, args.adapter, args.adapter_name, args.merge_adapter)}", file=sys.stderr)
    if pipe.untrained:
        print(f"warning: {UNTRAINED_WARNING}", file=sys.stderr)
    if pipe.notice:
        print(f"note: {pipe.notice}", file=sys.stderr)
    return pipe


def _run_item(pipe, item: Item, request: dict, args: argparse.Namespace, model: dict, load_s: float) -> None:
    import warnings

    from pixwizard.imageio import load_image
    from pixwizard.outputs import write_output_set

    t0 = time.perf_counter()
    img = load_image(item.image, max_pixels=pipe.config.max_pixels)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe(img, item.instruction, steps=item.steps, text_guidance=args.text_guidance,
                      image_guidance=args.image_guidance, seed=item.seed, size=args.size, sampler=args.sampler,
                      task=item.task, decode=not args.no_typed, shifts=getattr(args, "shifts", None),
                      tile=getattr(args, "tile", None), tile_overlap=getattr(args, "tile_overlap", None))
    t2 = time.perf_counter()
    written = write_output_set(item.output, result.image, result.decoded, result.task)
    t3 = time.perf_counter()
    timings = {"read": t1 - t0, "run": t2 - t1, "write": t3 - t2, "model_load": load_s}
    doc = provenance(result, image_path=item.image, output=item.output, written=written, model=model, pipe=pipe,
                     timings=timings, request=request)
    _write_json(item.sidecar, doc)  # last: its presence marks the item finished
