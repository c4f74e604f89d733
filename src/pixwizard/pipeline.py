"""PixWizardPipeline: the one inference entry that the CLI, the web UI and the REST API wrap.

``pipe(image, instruction, steps=..., text_guidance=..., image_guidance=..., seed=...)`` returns a
:class:`PixWizardResult` whose image has the input's exact size and alignment, whatever its size
or aspect ratio: the image is padded (mirror, right/bottom) to a multiple of the model's patch
size and cropped back; when it is larger than the working-size limit it is downscaled for the
model (aspect kept) and the output is resized back to the input size.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pixwizard.checkpoint import DEFAULT_CHECKPOINT, load_model
from pixwizard.config import PixWizardConfig, preset
from pixwizard.flow import (combine, get_sampler, item_generators, needed_branches, noise_like, sampling_velocity,
                            time_grid)
from pixwizard.imageio import load_image, pad_to_multiple
from pixwizard.model.encoders import build_codec, build_text_encoder
from pixwizard.model.encoders.base import TextEncoding
from pixwizard.pipeline_args import as_output, check_output_type, checkpoint_file, merge_alias
from pixwizard.runtime import Precision, autocast, resolve_device
from pixwizard.tasks.codecs import Decoded, codec_for
from pixwizard.tasks.colours import colour_in_text
from pixwizard.tasks.registry import get_task
from pixwizard.tasks.routing import Route, RouterCacheWarning
from pixwizard.tiles import blend_tiles, default_overlap, shift_windows

log = logging.getLogger(__name__)

# The largest working image an explicit ``size`` may ask for: 4x the default working size of
# 512x512; the model's activations grow with the pixel count.
MAX_WORKING_PIXELS = 1024 * 1024

UNTRAINED_WARNING = ("the model weights are untrained (no trained checkpoint found): the output is not "
                     "a real answer yet")


@dataclass
class PixWizardResult:
    image: np.ndarray  # HxWx3 uint8, the input's exact size
    instruction: str
    seed: int | None  # None when the noise came from a caller's torch.Generator
    steps: int
    untrained: bool
    working_size: tuple[int, int]  # (H, W) the model ran at, before padding
    task: str | None = None  # the task the output is decoded as (routed, or given)
    route: Route | None = None  # how the instruction was routed (None when the task was given)
    decoded: Decoded | None = None  # typed outputs: mask, boxes, depth, normals, labels
    notes: list[str] = field(default_factory=list)
    shifts: int = 1  # sampler passes averaged (half-patch shift ensemble)
    tiles: int = 1  # tiles the image was run in (``tile=``), 1 = the whole image at once

    @property
    def images(self) -> list:
        """``[image]``, as diffusers pipelines return ``.images``."""
        return [self.image]


def decode_output(task: str, output: np.ndarray, image: np.ndarray, instruction: str) -> tuple[Decoded | None, str | None]:
    """Typed results of ``output`` by the task's target codec. Codecs that look for a named colour
    (overlay, box) take the last colour named in the instruction; without one there is nothing to
    decode and a note says so."""
    codec = codec_for(task)
    colour = colour_in_text(instruction)
    if codec.name in ("overlay", "box") and colour is None:
        return None, f"no colour named in the instruction: the {codec.name} output was not decoded"
    return codec.decode(output, image, {"colour": colour} if colour else {}), None


def with_installed_docs(notice: str | None) -> str | None:
    """A checkpoint notice naming a document of the source tree (``MODEL_CARD.md``) names the copy
    installed with the package instead, which exists wherever pixwizard is installed."""
    if notice and "MODEL_CARD.md" in notice:
        installed = Path(__file__).parent / "MODEL_CARD.md"
        if installed.is_file():
            return notice.replace("MODEL_CARD.md", str(installed))
    return notice


def to_model_tensor(img: np.ndarray, device) -> torch.Tensor:
    """HxWx3 uint8 -> [1, 3, H, W] float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def shift_offsets(shifts: int, multiple: int) -> list[tuple[int, int]]:
    """(dy, dx) offsets of the passes of a shift ensemble: 1 -> none, 2 -> none and the half-patch
    diagonal, 4 -> all four half-patch offsets (``multiple`` = patch size in pixels)."""
    if shifts not in (1, 2, 4):
        raise ValueError(f"shifts must be 1, 2 or 4, got {shifts}")
    h = multiple // 2
    if h == 0:
        return [(0, 0)]
    return [(0, 0), (h, h), (0, h), (h, 0)][:shifts]


def shift_image(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Mirror ``dy`` rows on top and ``dx`` columns on the left (the content moves down-right)."""
    if dy == 0 and dx == 0:
        return img
    mode = "symmetric" if min(img.shape[:2]) >= max(dy, dx) else "edge"
    return np.pad(img, ((dy, 0), (dx, 0), (0, 0)), mode=mode)


def check_tile(tile: int, overlap: int | None, multiple: int) -> int:
    """The overlap to use (default: 32 px, at most a quarter of the tile); a clear error for tile
    settings that cannot work."""
    if overlap is None:
        overlap = default_overlap(tile)
    if tile < 2 * multiple:
        raise ValueError(f"tile must be at least {2 * multiple} pixels (two patches), got {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"tile overlap must be in [0, {tile // 2}) for {tile}-px tiles, got {overlap}")
    return overlap


def working_size(h: int, w: int, size: int | None, max_pixels: int,
                 limit: int | None = None) -> tuple[int, int]:
    """The size the model runs at: ``size`` = longest side if given, else the input's own size,
    downscaled (aspect kept) when it has more than ``max_pixels`` pixels. An explicit ``size``
    whose working image would have more than ``limit`` pixels is refused (memory grows with it)."""
    if size is not None:
        if size < 8:
            raise ValueError(f"--size must be at least 8 pixels, got {size}")
        s = size / max(h, w)
        wh, ww = max(1, round(h * s)), max(1, round(w * s))
        if limit is not None and wh * ww > limit:
            side = int((limit * max(h, w) / min(h, w)) ** 0.5)
            raise ValueError(f"--size {size} would run the model at {ww}x{wh} = {wh * ww} pixels, over the "
                             f"limit of {limit}; use --size {side} or less for this image")
        return wh, ww
    s = min(1.0, (max_pixels / (h * w)) ** 0.5)
    return max(1, round(h * s)), max(1, round(w * s))


class PixWizardPipeline:
    def __init__(self, model, text_encoder, codec, *, device: str | torch.device | None = None,
                 precision: Precision = "auto", untrained: bool = False, work_max_pixels: int = 512 * 512):
        self.device = resolve_device(str(device) if device is not None else None)
        self.model = model.to(self.device).eval()
        self.config: PixWizardConfig = model.config
        self.text_encoder = text_encoder
        self.codec = codec
        self.precision = precision
        self.untrained = untrained
        self.notice: str | None = None  # a checkpoint's one-line notice for users, if it has one
        self.work_max_pixels = work_max_pixels
        self.max_working_pixels = MAX_WORKING_PIXELS  # the most an explicit ``size`` may ask for
        self._null_text: TextEncoding | None = None
        self._router = None
        self._router_note: str | None = None  # a router-cache problem, told in the next result's notes

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, checkpoint: str | Path | None = None, *, device: str | None = None,
                        precision: Precision = "auto", preset_name: str = "tiny") -> "PixWizardPipeline":
        """Load ``checkpoint`` (default: the shipped ``pixwizard-tiny``). Without any trained weights
        the ``preset_name`` model is built with its initial weights and flagged as untrained."""
        dev = resolve_device(device)
        path = checkpoint_file(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        notice = None
        if path.is_file() or checkpoint is not None:
            model, info = load_model(path, device=dev)
            untrained = info.trained_samples == 0
            notice = with_installed_docs(info.extra.get("notice"))
            from pixwizard.finetune.tasks import register_from_metadata

            register_from_metadata(info.extra)  # a fully fine-tuned model's new task (pixwizard finetune)
        else:
            from pixwizard.model.pixwizard import PixWizard

            torch.manual_seed(0)
            model, untrained = PixWizard(preset(preset_name)), True
        cfg = model.config
        pipe = cls(model, build_text_encoder(cfg.text, device=str(dev)), build_codec(cfg.codec).to(dev),
                   device=dev, precision=precision, untrained=untrained)
        pipe.notice = notice
        if cfg.name.startswith("official"):  # the released 2B (pixwizard convert) runs near 768^2, its attention
            pipe.work_max_pixels = 768 * 768  # base; its exact inference: pixwizard.official.pipeline
        return pipe

    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Load a LoRA adapter file (``pixwizard finetune``) over the base model and make it the active
        one; several can be loaded, each under its name. Its task joins routing. Returns the name."""
        from pixwizard.finetune.adapters import load_adapter

        name = load_adapter(self.model, path, name)
        self.model.eval()
        self._router = None
        return name

    def set_adapter(self, name: str | None) -> None:
        """Apply the loaded adapter ``name`` (None: the base model alone)."""
        from pixwizard.finetune.adapters import set_active

        set_active(self.model, name)

    def merge_adapter(self, name: str) -> None:
        """Fold adapter ``name`` into the base weights (no LoRA cost per step; other adapters are dropped)."""
        from pixwizard.finetune.adapters import merge

        merge(self.model, name)

    # ------------------------------------------------------------------ pieces
    def route(self, instruction: str) -> Route:
        """Which task an instruction asks for (nearest phrasings of the instruction bank, in the
        packaged MiniLM's space plus word features; see ``pixwizard.tasks.routing``)."""
        if self._router is None:
            with torch.inference_mode(False), warnings.catch_warnings():  # fitting needs autograd
                warnings.simplefilter("ignore", RouterCacheWarning)  # said once as a result note instead
                self._router = self._build_router()
            self._router_note = getattr(self._router, "cache_note", None)
        return self._router.route(instruction)

    def _build_router(self):
        from pixwizard.config import TextEncoderConfig
        from pixwizard.tasks.routing import default_cache_dir, default_router, shipped_router, text_encoder_embed_fn

        if self.config.text == TextEncoderConfig():  # share the model's MiniLM with the (shipped) router
            return shipped_router(text_encoder_embed_fn(self.text_encoder), cache_dir=default_cache_dir())
        return default_router()

    def encode_text(self, instructions: list[str]) -> TextEncoding:
        return self.text_encoder.encode(instructions).to(self.device)

    def null_text(self, n: int) -> TextEncoding:
        if self._null_text is None:
            self._null_text = self.encode_text([""])
        return _repeat(self._null_text, n)

    def velocity_fn(self, cond: torch.Tensor, cond_pixels: torch.Tensor, text: TextEncoding,
                    text_guidance: float, image_guidance: float):
        """The guided velocity v(x, t): the needed guidance branches run as one batch."""
        branches = needed_branches(text_guidance, image_guidance)
        n = cond.shape[0]
        null = self.null_text(n)
        texts = {"full": text, "image": null, "null": null}
        zeros = torch.zeros_like(cond)
        conds = {"full": cond, "image": cond, "null": zeros}
        pix = {"full": cond_pixels, "image": cond_pixels, "null": torch.zeros_like(cond_pixels)}
        text_b = _cat([texts[b] for b in branches])
        cond_b = torch.cat([conds[b] for b in branches])
        pix_b = torch.cat([pix[b] for b in branches])
        # the semantic tokens do not depend on x or t: encode them once per call of the sampler
        sem = self.model.encode_semantic(pix_b)
        flow = self.config.flow
        model = self.model

        def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            xb = x.repeat(len(branches), 1, 1, 1)
            tb = t.repeat(len(branches))
            with autocast(self.device, self.precision):
                out = model.predict(xb, tb, cond_b, text_b, sem)
            vel = sampling_velocity(flow.prediction, out.float(), xb, tb)  # exact 1 - t: lands on x1_hat
            return combine(dict(zip(branches, vel.split(n))), text_guidance, image_guidance)

        return v

    # ------------------------------------------------------------------ call
    @torch.inference_mode()
    def __call__(self, image, instruction: str, *, steps: int | None = None, text_guidance: float | None = None,
                 image_guidance: float | None = None, seed: int = 0, size: int | None = None,
                 sampler: str | None = None, task: str | None = None, decode: bool = True,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 image_guidance_scale: float | None = None, generator: torch.Generator | None = None,
                 output_type: str = "np", shifts: int | None = None, tile: int | None = None,
                 tile_overlap: int | None = None) -> PixWizardResult:
        """Run one instruction. ``task`` (a registry id) says how to decode the output into typed
        results; by default the instruction is routed to a task. ``decode=False`` skips both.
        The diffusers names (``num_inference_steps``, ``guidance_scale``, ``image_guidance_scale``,
        ``generator``, ``output_type="pil"``) work too: see ``pixwizard.pipeline_args``.
        ``steps`` and ``shifts`` default to the model's sampling defaults for the task (given, or the
        routed one: ``flow.task_sampling``), else its ``flow.steps`` and ``flow.shifts``.
        ``shifts`` (1, 2 or 4) runs the sampler that many times
        with the image shifted by half a patch (none; diagonal; all four) and averages the outputs:
        each pass's patch borders fall inside the other's patches (:func:`shift_offsets`); with
        ``flow.shift_blend`` > 0 each pass is weighted down near its own patch borders instead of
        plainly averaged (:func:`pixwizard.tiles.shift_windows`; 1 = fully, 0 = the plain mean).
        ``tile`` (pixels) runs the model on ``tile x tile`` tiles of the image at its own resolution,
        overlapping by ``tile_overlap`` (default 32, at most a quarter of the tile) and blended
        (``pixwizard.tiles``), instead of downscaling a large image to the working size; ``size`` is
        then ignored."""
        steps = merge_alias("steps", steps, "num_inference_steps", num_inference_steps)
        text_guidance = merge_alias("text_guidance", text_guidance, "guidance_scale", guidance_scale)
        image_guidance = merge_alias("image_guidance", image_guidance, "image_guidance_scale", image_guidance_scale)
        check_output_type(output_type)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("the instruction is empty: say what to do with the image")
        if task is not None:
            get_task(task)  # a clear error naming close ids for an unknown task
        img = image if isinstance(image, np.ndarray) else load_image(image, max_pixels=self.config.max_pixels)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {img.dtype} {img.shape}")
        h, w = img.shape[:2]
        if h * w > self.config.max_pixels:
            raise ValueError(f"the image has {h}x{w} = {h * w} pixels, over the limit of {self.config.max_pixels}")
        flow = self.config.flow
        route = None
        if flow.task_sampling and (steps is None or shifts is None) and task is None:
            route = self.route(instruction.strip())  # the routed task picks its own sampling defaults
        sampling_task = task if task is not None else (None if route is None or route.no_match else route.task)
        task_steps, task_shifts = flow.sampling_for(sampling_task)
        steps = task_steps if steps is None else int(steps)
        wt = flow.text_guidance if text_guidance is None else float(text_guidance)
        wi = flow.image_guidance if image_guidance is None else float(image_guidance)
        for name, value in (("text guidance", wt), ("image guidance", wi)):
            if not math.isfinite(value):
                raise ValueError(f"the {name} scale must be a finite number, got {value}")
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        multiple = self.config.pixel_multiple
        offsets = shift_offsets(task_shifts if shifts is None else shifts, multiple)
        if not 0 <= int(seed) < 2 ** 63:
            raise ValueError(f"the seed must be an integer in [0, 2**63), got {seed}")
        run_sampler = get_sampler(sampler or flow.sampler)
        if self.untrained:
            warnings.warn(UNTRAINED_WARNING, stacklevel=2)

        if tile is not None:
            tile_overlap = check_tile(tile, tile_overlap, multiple)
            wh, ww = h, w  # tiles run at the image's own resolution
        else:
            wh, ww = working_size(h, w, size, self.work_max_pixels, self.max_working_pixels)
        work = img if (wh, ww) == (h, w) else _resize(img, (ww, wh), shrink=True)
        text = self.encode_text([instruction.strip()])
        gens = [generator] if generator is not None else item_generators([seed])
        grid = time_grid(steps, flow.sample_shift, device=self.device)

        def sample(part: np.ndarray) -> np.ndarray:
            """The shift ensemble on one image (or tile): HxWx3 float in [-1, 1]."""
            ph, pw = part.shape[:2]
            total = None
            weights = None
            if flow.shift_blend > 0 and len(offsets) > 1:  # each pass counts less on its own patch borders
                weights = shift_windows(offsets, ph, pw, multiple, flow.shift_blend)
                weights = torch.from_numpy(weights).float().to(self.device)
            for i, (dy, dx) in enumerate(offsets):  # one pass, or passes at half-patch offsets
                padded, _ = pad_to_multiple(shift_image(part, dy, dx), multiple)
                cond_pixels = to_model_tensor(padded, self.device)
                cond = self.codec.encode(cond_pixels)
                v = self.velocity_fn(cond, cond_pixels, text, wt, wi)
                x0 = noise_like(tuple(cond.shape), gens, device=gens[0].device).to(self.device)
                pixels = self.codec.decode(run_sampler(v, x0, grid)).float().clamp(-1, 1)[..., dy:dy + ph, dx:dx + pw]
                if weights is not None:
                    pixels = pixels * weights[i]
                total = pixels if total is None else total + pixels
            mean = total if weights is not None else total / len(offsets)
            return mean[0].permute(1, 2, 0).cpu().numpy()

        if tile is not None:
            blended, n_tiles = blend_tiles(work, sample, tile, tile_overlap)
        else:
            blended, n_tiles = sample(work), 1
        out = np.clip(np.round((blended + 1.0) * 127.5), 0, 255).astype(np.uint8)
        if (wh, ww) != (h, w):
            out = _resize(out, (w, h), shrink=False)
        result = PixWizardResult(np.ascontiguousarray(out), instruction, seed, steps, self.untrained, (wh, ww),
                                 shifts=len(offsets), tiles=n_tiles)
        if decode:
            if task is None:
                result.route = route if route is not None else self.route(instruction.strip())
                task = result.route.task
                if self._router_note:
                    result.notes.append(self._router_note)
                    self._router_note = None
                if result.route.no_match:  # no silent guess: say so, list the closest tasks, decode nothing
                    result.notes.append(f"{result.route.message()}; name the task (--task, or task= in Python) for typed outputs")
                elif result.route.low_confidence:
                    result.notes.append(f"the instruction was routed with low confidence: {result.route.message()}")
            if result.route is None or not result.route.no_match:
                result.task = task
                result.decoded, note = decode_output(task, result.image, img, instruction)
                if note:
                    result.notes.append(note)
        if generator is not None:
            result.seed = None  # the noise came from the caller's generator
        result.image = as_output(result.image, output_type)
        return result

    def to(self, device: str | torch.device) -> "PixWizardPipeline":
        """Move the model, the text encoder and the codec to ``device`` (diffusers-style); returns self."""
        dev = resolve_device(str(device))
        self.model.to(dev)
        self.text_encoder.to(dev)
        self.codec.to(dev)
        self.device = dev
        self._null_text = None
        return self


def _resize(img: np.ndarray, size_wh: tuple[int, int], shrink: bool) -> np.ndarray:
    """OpenCV resize (area when shrinking, cubic when enlarging); OpenCV is imported on first use."""
    import cv2

    return cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _repeat(t: TextEncoding, n: int) -> TextEncoding:
    return TextEncoding(t.tokens.expand(n, -1, -1), t.mask.expand(n, -1), t.pooled.expand(n, -1))


def _cat(items: list[TextEncoding]) -> TextEncoding:
    """Concatenate encodings along the batch, right-padding token lists to the longest."""
    return TextEncoding.pack([item for e in items for item in e.unpack()])
