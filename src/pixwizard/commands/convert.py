"""``pixwizard convert``: the released PixWizard checkpoint -> a PixWizard safetensors model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert the released PixWizard checkpoint (model_args.pth + "
                                       "consolidated_ema.00-of-01.pth) into a PixWizard model file",
                       description="Read the official checkpoint folder (or a safetensors export of its state "
                                   "dict, or the reference fixture's layout) without unpickling anything but "
                                   "tensors and the argparse.Namespace, and write a PixWizard safetensors file "
                                   "with the resolved config, one tensor at a time.")
    p.add_argument("source", help="official checkpoint folder, or its state-dict file (.pth / .safetensors)")
    p.add_argument("-o", "--out", required=True, help="output .safetensors file")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="weights dtype of the output (default: the source's own)")
    p.add_argument("--resolution", type=int, default=768,
                   help="bucket resolution whose (resolution // 16)^2 tokens are the proportional-attention "
                        "base (official inference: 768 -> 2304)")
    p.add_argument("--vae", default=None, help="SDXL VAE folder or hub id (default stabilityai/sdxl-vae)")
    p.add_argument("--text-encoder", default=None, help="Gemma-2B folder or hub id (default google/gemma-2b)")
    p.add_argument("--clip", default=None,
                   help="CLIP-L/14-336 folder or hub id (default openai/clip-vit-large-patch14-336)")
    p.add_argument("--ignore-args", action="store_true",
                   help="do not read model_args.pth/json (e.g. when it holds more than a plain Namespace): sizes "
                        "come from the tensors, 256 kept semantic tokens as released")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pixwizard.cli import UserError
    from pixwizard.official.convert import Parts, convert

    if not str(args.out).endswith(".safetensors"):
        raise UserError(f"--out must end in .safetensors, got {args.out}")
    if args.resolution < 16 or args.resolution % 16:
        raise UserError(f"--resolution must be a positive multiple of 16, got {args.resolution}")
    def where(value: str | None, default: str) -> str:
        """A local folder is stored as an absolute path (the file may be used from elsewhere)."""
        if value is None:
            return default
        return str(Path(value).expanduser().resolve()) if Path(value).expanduser().exists() else value

    parts = None
    if args.vae or args.text_encoder or args.clip:
        d = Parts()
        parts = Parts(vae=where(args.vae, d.vae), text=where(args.text_encoder, d.text), clip=where(args.clip, d.clip))

    def progress(i: int, n: int) -> None:
        if sys.stderr.isatty() and (i == n or i % 50 == 0):
            print(f"\r{i}/{n} tensors", end="\n" if i == n else "", file=sys.stderr)

    cfg = convert(args.source, args.out, dtype=args.dtype, resolution=args.resolution, parts=parts,
                  progress=progress, read_args=not args.ignore_args)
    m = cfg.model
    print(f"wrote {args.out}: {cfg.name}, {m.depth} blocks, width {m.dim}, {m.heads}/{m.kv_heads} heads, "
          f"patch {m.patch_size}, attention base {m.train_tokens} tokens")
    return 0
