"""``pixwizard run IMAGE "instruction" -o OUT``: one instruction on one image."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("run", help="apply an instruction to an image",
                       description="Apply a free-form instruction to an image and write the result.")
    p.add_argument("image", help="input image file; or, for batch mode, a folder, a quoted glob pattern or a "
                                 ".jsonl manifest (see pixwizard.batch)")
    p.add_argument("instruction", nargs="?", help='what to do, e.g. "remove the rain" (in a manifest: per line)')
    p.add_argument("-o", "--output", help="output image path (default: <image stem>.pixwizard.png here); "
                                          "batch mode: the output folder")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (batch: a summary)")
    p.add_argument("--checkpoint", help="model checkpoint (.safetensors); default: the shipped pixwizard-tiny")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's for the task)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    p.add_argument("--size", type=int, help="run the model with this longest side, output resized back")
    p.add_argument("--text-guidance", type=float, help="text guidance scale (default: the model's)")
    p.add_argument("--image-guidance", type=float, help="image guidance scale (default: the model's)")
    p.add_argument("--sampler", choices=["euler", "heun"], help="ODE sampler (default: the model's)")
    p.add_argument("--shifts", type=int, choices=(1, 2, 4),
                   help="run the sampler 1, 2 or 4 times with the image shifted by half a patch and average: "
                        "hides the patch grid at that many times the cost (default: the model's for the task)")
    p.add_argument("--tile", type=int, metavar="PX",
                   help="run the model on PX x PX tiles of the image at its own resolution, blended where they "
                        "overlap, instead of downscaling an image over the working size (512x512 pixels)")
    p.add_argument("--tile-overlap", type=int, metavar="PX",
                   help="overlap of neighbouring tiles (default 32, at most a quarter of the tile)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto = bf16 only where the hardware runs it natively")
    p.add_argument("--task", help="decode the output as this task (default: routed from the instruction; "
                                  "see `pixwizard tasks`)")
    p.add_argument("--no-typed", action="store_true", help="write only the output image, no typed outputs")
    p.add_argument("--adapter", action="append", default=[], metavar="A.safetensors",
                   help="LoRA adapter from `pixwizard finetune` over the model (repeatable; the last one is applied)")
    p.add_argument("--adapter-name", help="which loaded adapter to apply (default: the last --adapter)")
    p.add_argument("--merge-adapter", action="store_true", help="fold the applied adapter into the model weights")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pixwizard.imageio import load_image
    from pixwizard.outputs import write_output_set
    from pixwizard.pipeline import UNTRAINED_WARNING, PixWizardPipeline

    from pixwizard.batch import is_batch_input, model_provenance, provenance, run_batch

    if is_batch_input(args.image):
        return run_batch(args)
    if args.instruction is None:
        raise ValueError("give the instruction after the image, e.g. pixwizard run photo.jpg \"remove the rain\"")
    from pixwizard.outputs import check_run_options

    out = check_run_options(args)  # the options, the task id, the input and the output path
    pipe = PixWizardPipeline.from_pretrained(args.checkpoint, device=args.device, precision=args.precision)
    if args.adapter or args.adapter_name or args.merge_adapter:
        from pixwizard.finetune.adapters import apply_adapters

        print(f"adapter: {apply_adapters(pipe, args.adapter, args.adapter_name, args.merge_adapter)}")
    img = load_image(args.image, max_pixels=pipe.config.max_pixels)
    if pipe.untrained:
        print(f"warning: {UNTRAINED_WARNING}", file=sys.stderr)
    if pipe.notice:
        print(f"note: {pipe.notice}", file=sys.stderr)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe(img, args.instruction, steps=args.steps, text_guidance=args.text_guidance,
                      image_guidance=args.image_guidance, seed=args.seed, size=args.size, sampler=args.sampler,
                      task=args.task, decode=not args.no_typed, shifts=args.shifts, tile=args.tile,
                      tile_overlap=args.tile_overlap)
    dt = time.perf_counter() - t0
    written = write_output_set(out, result.image, result.decoded, result.task)
    if args.json:
        for note in result.notes:
            print(f"warning: {note}", file=sys.stderr)
        doc = provenance(result, image_path=args.image, output=out, written=written,
                         model=model_provenance(pipe, args.checkpoint), pipe=pipe, timings={"run": dt},
                         request={"text_guidance": args.text_guidance, "image_guidance": args.image_guidance,
                                  "sampler": args.sampler})
        print(json.dumps({k: v for k, v in doc.items() if k != "request"}))
        return 0
    if result.route is not None and not result.route.no_match:  # no match: the warning below says it all
        print(f"task: {result.route.message()}")
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote {out} ({result.image.shape[1]}x{result.image.shape[0]}, {result.steps} steps, seed {result.seed}, "
          f"{dt:.2f} s)")
    for kind, path in written.items():
        if kind != "image":
            print(f"wrote {path} ({kind})")
    return 0
