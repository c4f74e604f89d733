"""``pixwizard model``: look inside a model file, and set the sampling defaults it carries.

``pixwizard model info FILE`` prints what the file holds: its configuration's size, the samples it
was trained on, its notice, its sampling defaults and the digest of its tensors.

``pixwizard model set FILE [--out OUT] [--steps N] [--shifts 1|2|4] [--task-sampling JSON] ...``
writes the same tensors with new sampling defaults (the ``flow`` settings ``run``, ``eval``, ``serve``
and the Python pipeline use when not told otherwise; ``--task-sampling`` gives tasks their own
steps and shifts), a new notice or a new sample count.

``pixwizard model pick-sampling REF_RUN STEPSxSHIFTS=RUN ... [--out TABLE.json]`` chooses that table
from ``pixwizard eval`` runs of a selection set (``pixwizard.eval.sampling_pick``). The tensors are copied
byte for byte (``info`` shows the same digest); the file is written atomically, in place unless
``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import math

SAMPLING = ("steps", "shifts", "shift_blend", "sampler", "text_guidance", "image_guidance", "sample_shift")


def _file_info(path: str) -> dict:
    from pixwizard.checkpoint import read_info, tensors_digest

    info = read_info(path)
    cfg = info.config
    m = cfg.model
    return {"file": str(path), "name": cfg.name, "trained_samples": info.trained_samples,
            "notice": info.extra.get("notice"), "version": info.extra.get("pixwizard_version"),
            "model": {"dim": m.dim, "depth": m.depth, "heads": m.heads, "patch_size": m.patch_size},
            "sampling": {k: getattr(cfg.flow, k) for k in SAMPLING}, "task_sampling": dict(cfg.flow.task_sampling),
            "tensors_sha256": tensors_digest(path)}


def _info(args: argparse.Namespace) -> int:
    d = _file_info(args.file)
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    m = d["model"]
    print(f"{d['file']}: {d['name']} (dim {m['dim']}, depth {m['depth']}, heads {m['heads']}, patch {m['patch_size']}), "
          f"trained on {d['trained_samples']:,} samples")
    print("sampling defaults: " + ", ".join(f"{k} {v}" for k, v in d["sampling"].items()))
    if d["task_sampling"]:
        print("per task (steps x shifts): " + ", ".join(f"{t} {a}x{b}" for t, (a, b) in sorted(d["task_sampling"].items())))
    if d["notice"]:
        print(f"notice: {d['notice']}")
    print(f"tensors sha256: {d['tensors_sha256']}")
    return 0


def _task_sampling(text: str) -> dict[str, list[int]]:
    """``--task-sampling``: a JSON object (or a .json file of one) of task id -> [steps, shifts];
    ``{}`` removes every per-task default. Task ids are checked against the registry."""
    from pathlib import Path

    from pixwizard.commands import json_object_option
    from pixwizard.tasks.registry import get_task

    source = Path(text).read_text() if text.strip().endswith(".json") else text
    table = json_object_option(source, "--task-sampling", "of task -> [steps, shifts]")
    for task in table:
        get_task(task)  # a clear error naming close ids
    return table


def _set(args: argparse.Namespace) -> int:
    from safetensors import safe_open

    from pixwizard.checkpoint import read_info, write_metadata
    from pixwizard.config import PixWizardConfig

    read_info(args.file)  # a clear error for a file that is not a PixWizard model
    with safe_open(str(args.file), framework="pt") as f:
        meta = dict(f.metadata())
    raw = json.loads(meta["pixwizard_config"])
    changes = {k: getattr(args, k) for k in SAMPLING if getattr(args, k) is not None}
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    for k in ("text_guidance", "image_guidance", "sample_shift"):
        if k in changes and not (math.isfinite(changes[k]) and changes[k] >= 0):
            raise ValueError(f"--{k.replace('_', '-')} must be a finite number >= 0, got {changes[k]}")
    if args.trained_samples is not None and args.trained_samples < 0:
        raise ValueError(f"--trained-samples must be >= 0, got {args.trained_samples}")
    if args.task_sampling is not None:
        changes["task_sampling"] = _task_sampling(args.task_sampling)
    if not changes and args.notice is None and not args.no_notice and args.trained_samples is None:
        raise ValueError("nothing to set: give --steps, --shifts, --shift-blend, --sampler, --text-guidance, --image-guidance, "
                         "--sample-shift, --task-sampling, --notice, --no-notice or --trained-samples")
    raw.setdefault("flow", {}).update(changes)
    meta["pixwizard_config"] = PixWizardConfig.from_dict(raw).to_json()  # checked and complete
    if args.no_notice:
        meta.pop("notice", None)
    elif args.notice is not None:
        meta["notice"] = " ".join(args.notice.split())
    if args.trained_samples is not None:
        meta["trained_samples"] = str(args.trained_samples)
    out = args.out or args.file
    write_metadata(args.file, out, meta)
    flow = read_info(out).config.flow
    per_task = f", {len(flow.task_sampling)} tasks with their own" if flow.task_sampling else ""
    print(f"wrote {out}: sampling defaults " + ", ".join(f"{k} {getattr(flow, k)}" for k in SAMPLING)
          + per_task + "; tensors copied byte for byte")
    return 0


def _pick(args: argparse.Namespace) -> int:
    from pixwizard.eval.sampling_pick import format_choices, parse_candidate, pick_sampling
    from pathlib import Path

    from pixwizard.data.shards import atomic_write_json

    candidates = [parse_candidate(c) for c in args.candidates]
    table = {}
    for ref in args.ref_run:  # one reference per suite; each candidate is paired with the runs of its suite
        mine = [c for c in candidates if _same_suite(c[2], ref)]
        if not mine:
            raise ValueError(f"no candidate run of the suite of {ref}")
        part, choices = pick_sampling(ref, mine, z=args.z)
        print(f"{ref}:\n" + format_choices(choices, part, args.z))
        table.update(part)
    if args.out:
        atomic_write_json(Path(args.out), table)
        print(f"wrote {args.out}: {len(table)} tasks (use: pixwizard model set FILE --task-sampling {args.out})")
    else:
        print(json.dumps(table))
    return 0


def _same_suite(run: str, ref: str) -> bool:
    from pathlib import Path

    suite = [json.loads((Path(d) / "metrics.json").read_text()).get("suite") if (Path(d) / "metrics.json").is_file()
             else None for d in (run, ref)]
    return suite[0] is not None and suite[0] == suite[1]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="show a model file, or set its sampling defaults",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="what a model file holds (size, samples, notice, defaults, digest)")
    info.add_argument("file", help="a PixWizard model file (.safetensors)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)
    s = sub.add_parser("set", help="write the same tensors with new sampling defaults, notice or sample count")
    s.add_argument("file", help="a PixWizard model file (.safetensors)")
    s.add_argument("--out", help="write here (default: the file itself, atomically)")
    s.add_argument("--steps", type=int, help="sampling steps")
    s.add_argument("--shifts", type=int, choices=(1, 2, 4), help="sampler passes at half-patch offsets, averaged")
    s.add_argument("--shift-blend", type=float, metavar="S",
                   help="combine the shifted passes: 0 = plain mean, 1 = each weighted down near its own patch "
                        "borders (pixwizard.tiles.shift_windows), in between a mix")
    s.add_argument("--sampler", choices=("euler", "heun"))
    s.add_argument("--text-guidance", type=float)
    s.add_argument("--image-guidance", type=float)
    s.add_argument("--sample-shift", type=float, help="time-grid shift of the sampler")
    s.add_argument("--task-sampling", metavar="JSON",
                   help='per-task steps and shifts, e.g. \'{"denoise": [2, 4]}\' or a .json file of that ({} removes them)')
    s.add_argument("--notice", help="one line the tools show users (e.g. that a checkpoint is an early one)")
    s.add_argument("--no-notice", action="store_true", help="remove the notice")
    s.add_argument("--trained-samples", type=int, help="the samples the weights were trained on")
    s.set_defaults(func=_set)
    p = sub.add_parser("pick-sampling", help="choose per-task steps and shifts from eval runs of a selection set")
    p.add_argument("--ref", dest="ref_run", action="append", required=True, metavar="RUN",
                   help="run folder of the model with its defaults (once per suite: --ref A --ref B)")
    p.add_argument("candidates", nargs="+", metavar="STEPSxSHIFTS=RUN",
                   help="run folders of the same items with other sampling, e.g. 2x4=EV/photo-restoration/model-steps2-shifts4")
    p.add_argument("--z", type=float, default=1.64, help="standard errors a gain must exceed (default 1.64)")
    p.add_argument("--out", help="write the table here (JSON) for model set --task-sampling")
    p.set_defaults(func=_pick)
