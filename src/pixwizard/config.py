"""Typed configuration for PixWizard, with presets as functions.

Presets:
- ``debug``: a few thousand parameters, for tests.
- ``tiny``: the CPU default (pixel space, patch 8, MiniLM text, a small trained semantic encoder).
- ``base-2b``: the paper's dimensions (24 layers, width 2304, 32 heads, 8 KV heads, patch 2 on
  SDXL-VAE latents, Gemma-2B text, CLIP-L/14-336 task embedding and semantic tokens).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal


@dataclass
class TextEncoderConfig:
    """Instruction encoder: token states for cross-attention and a pooled vector for the task embedding."""

    kind: Literal["minilm", "clip", "gemma", "random"] = "minilm"
    name_or_path: str | None = None  # hub id or local folder; None = the packaged default for ``kind``
    max_length: int = 64
    token_dim: int = 384  # width of the token states
    pooled_dim: int = 384  # width of the pooled vector
    # "random": a tiny randomly-initialised encoder built in process (tests, debugging).
    layer: int = -1  # hidden-state index for token states (-2 = penultimate, as the paper uses for Gemma)
    # Where the pooled vector comes from: "same" = the token model (mean-pooled for MiniLM, projected
    # text embeds for CLIP, mean-pooled for Gemma); "clip" = a separate CLIP text model (the paper's
    # task embedding uses the CLIP-L/14-336 text projection while Gemma gives the tokens).
    pooled_kind: Literal["same", "clip"] = "same"
    pooled_name_or_path: str | None = None


@dataclass
class SemanticEncoderConfig:
    """Semantic image encoder (trained with the model by default; CLIP vision as an option)."""

    kind: Literal["conv", "clip", "none"] = "conv"
    name_or_path: str | None = None
    dim: int = 128  # width of the semantic tokens
    image_size: int = 128  # the encoder sees the condition resized to this square size
    grid: int = 8  # conv encoder: tokens on a grid x grid lattice
    width: int = 64  # conv encoder: channel width
    # how the condition is resized to image_size: "bilinear" (antialiased; ours) or
    # "bicubic-align-corners" (no antialias; the official PixWizard CLIP preprocessing)
    resize: Literal["bilinear", "bicubic-align-corners"] = "bilinear"


@dataclass
class CodecConfig:
    """Latent codec: pixel space (identity) or a diffusers AutoencoderKL."""

    kind: Literal["pixel", "vae"] = "pixel"
    name_or_path: str | None = None
    latent_channels: int = 3
    downsample: int = 1
    scaling_factor: float = 1.0
    shift_factor: float = 0.0


@dataclass
class ModelConfig:
    """The unified flow-matching DiT (Next-DiT blocks with PixWizard's guidance paths)."""

    patch_size: int = 8
    in_channels: int = 3  # channels of the target (codec latent channels)
    dim: int = 256
    depth: int = 6
    heads: int = 4
    kv_heads: int = 2
    ffn_mult: float = 8 / 3  # SwiGLU hidden = multiple_of-rounded ffn_mult * dim
    multiple_of: int = 32
    adaln_dim: int = 256  # width of the conditioning vector (paper: min(dim, 1024))
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    train_tokens: int = 64  # image tokens seen in training; NTK scaling and proportional attention beyond
    text_dim: int = 384
    task_dim: int = 384
    semantic_dim: int = 128
    use_structural: bool = True  # condition image concatenated channel-wise
    use_semantic: bool = True  # semantic tokens via adaLN + gated cross-attention
    use_text: bool = True
    sampler_enabled: bool = True  # Task-Aware Dynamic Sampler
    sampler_keep: int = 32  # K tokens kept of the semantic tokens
    sampler_tau: float = 5.0  # Gumbel-softmax temperature
    learn_sigma: bool = False  # the paper's checkpoint predicts extra channels; we never use them
    qk_norm: bool = True
    # Condition-anchored x-prediction: the clean-target estimate is ``gate * condition + network
    # output`` (a skip from the structural condition to the output), with a per-channel gate
    # ``1 + linear(task embedding)`` initialised to 1. With the zero-initialised final layer a new
    # model returns its input, so restoration and editing start from the identity and learn the
    # change, while dense tasks can learn to close the gate. Needs x-prediction and structural
    # guidance; the condition is zero where it is dropped and for text-to-image. Not in the paper
    # (measured in MODEL_CARD.md and docs/ablations.md).
    condition_skip: bool = False
    # Width of a convolutional refinement of the output across patch borders (0: none; see
    # pixwizard.model.refine). Zero-initialised, so a model grown with it starts unchanged. Not in the paper.
    refine: int = 0
    # Forward-pass conventions. The defaults are ours (and what every checkpoint trained here was
    # trained with); the released PixWizard checkpoint needs the other value of each
    # (``pixwizard convert`` writes them; docs/official-checkpoint.md):
    timestep_scale: float = 1000.0  # t multiplies this before the sinusoid (official: 1, t in [0, 1])
    cross_attn_rope_query: bool = False  # text/semantic cross-attentions use the RoPE-rotated query
    sampler_score_before_norm: bool = False  # score the projected semantic tokens before their RMSNorm,
    # then normalise only the kept ones (official); ours normalises all tokens, then scores
    sampler_eval_gumbel: bool = False  # Gumbel noise in the token sampler at inference (official quirk)
    rope_ntk: bool = True  # NTK-aware RoPE scaling beyond train_tokens (the official inference has none)
    # The proportional-attention base is ``train_tokens`` unless the caller passes one per call
    # (``PixWizardDiT.forward(attn_base_tokens=...)``): the official inference uses
    # (bucket resolution // 16)^2, 2304 at 768. The official per-head RoPE layout (row and column
    # pairs interleaved) is converted by permuting q/k channels, so the model has one layout.


@dataclass
class FlowConfig:
    """Flow-matching objective and sampling defaults (time convention: t=0 noise, t=1 data)."""

    prediction: Literal["velocity", "x"] = "x"
    time_sampling: Literal["uniform", "logit_normal", "shifted"] = "logit_normal"
    logit_mean: float = -0.8
    logit_std: float = 1.0
    time_shift: float = 1.0
    # share of training times drawn instead at the sampler's own evaluation times (the grids of
    # ``steps`` and of every ``task_sampling`` entry, after ``sample_shift``); 0 keeps ``time_sampling``
    grid_share: float = 0.0
    drop_text: float = 0.05
    drop_image: float = 0.05
    drop_both: float = 0.05
    t_eps: float = 0.05  # x-prediction loss: both sides (x1_hat - x_t) / max(1 - t, t_eps); sampling uses 1 - t
    sampler: Literal["euler", "heun"] = "euler"
    steps: int = 4
    shifts: int = 1  # sampler passes at half-patch offsets, averaged (1, 2 or 4; see PixWizardPipeline)
    # how the passes are combined: 0 = plain mean; 1 = each pass weighted down near its own patch
    # borders (pixwizard.tiles.shift_windows); in between, a mix of the two
    shift_blend: float = 0.0
    sample_shift: float = 1.0
    text_guidance: float = 1.0
    image_guidance: float = 1.0
    # per-task sampling defaults, task id -> [steps, shifts], chosen by measurement (pixwizard model set
    # --task-sampling); a task not listed, or an instruction routed to no task, uses steps and shifts above
    task_sampling: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.grid_share <= 1.0:
            raise ValueError(f"flow.grid_share must be in [0, 1], got {self.grid_share!r}")
        if isinstance(self.shift_blend, bool) or not isinstance(self.shift_blend, (int, float)) \
                or not 0.0 <= self.shift_blend <= 1.0:
            raise ValueError(f"flow.shift_blend must be a number in [0, 1], got {self.shift_blend!r}")
        self.shift_blend = float(self.shift_blend)
        if not isinstance(self.task_sampling, dict):
            raise ValueError(f"flow.task_sampling must map task ids to [steps, shifts], got {self.task_sampling!r}")
        for task, pair in self.task_sampling.items():
            ok = (isinstance(task, str) and task and isinstance(pair, (list, tuple)) and len(pair) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) for v in pair))
            if not ok or pair[0] < 1 or pair[1] not in (1, 2, 4):
                raise ValueError(f"flow.task_sampling[{task!r}] must be [steps >= 1, shifts 1|2|4], got {pair!r}")
        self.task_sampling = {k: [int(v[0]), int(v[1])] for k, v in self.task_sampling.items()}

    def sampling_for(self, task: str | None) -> tuple[int, int]:
        """(steps, shifts) for ``task``: its entry of ``task_sampling``, else the model-wide defaults."""
        steps, shifts = self.task_sampling.get(task, (self.steps, self.shifts)) if task else (self.steps, self.shifts)
        return int(steps), int(shifts)


@dataclass
class PixWizardConfig:
    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    semantic: SemanticEncoderConfig = field(default_factory=SemanticEncoderConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    max_pixels: int = 4096 * 4096  # images above this are refused

    def __post_init__(self) -> None:
        if isinstance(self.model, ModelConfig) and not (isinstance(self.model.refine, int) and self.model.refine >= 0):
            raise ValueError(f"model.refine must be a width >= 0 (0: no refinement), got {self.model.refine!r}")
        if isinstance(self.model, ModelConfig) and isinstance(self.flow, FlowConfig) and self.model.condition_skip:
            if self.flow.prediction != "x":
                raise ValueError("model.condition_skip needs flow.prediction = 'x' (it anchors the clean-target "
                                 f"estimate on the condition), got {self.flow.prediction!r}")
            if not self.model.use_structural:
                raise ValueError("model.condition_skip needs model.use_structural (the skip is a structural path)")

    @property
    def pixel_multiple(self) -> int:
        """Image sides the model takes are multiples of this: one patch token's side in pixels
        (patch size x codec downsample)."""
        return int(self.model.patch_size * self.codec.downsample)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PixWizardConfig":
        return _from_dict(cls, d)

    @classmethod
    def from_json(cls, s: str) -> "PixWizardConfig":
        return cls.from_dict(json.loads(s))


def _from_dict(cls, d: dict[str, Any]):
    """Build a (nested) dataclass from a dict, refusing unknown keys with a clear error."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    kwargs = {}
    for k, v in d.items():
        sub = _DATACLASS_FIELDS.get((cls, k))
        kwargs[k] = _from_dict(sub, v) if sub is not None and isinstance(v, dict) else v
    return cls(**kwargs)


_DATACLASS_FIELDS = {
    (PixWizardConfig, "model"): ModelConfig,
    (PixWizardConfig, "text"): TextEncoderConfig,
    (PixWizardConfig, "semantic"): SemanticEncoderConfig,
    (PixWizardConfig, "codec"): CodecConfig,
    (PixWizardConfig, "flow"): FlowConfig,
}


# ----------------------------------------------------------------------------- presets


def debug() -> PixWizardConfig:
    """A few-thousand-parameter model with a random tiny text encoder: for tests only."""
    return PixWizardConfig(
        name="debug",
        model=ModelConfig(
            patch_size=4, dim=32, depth=2, heads=4, kv_heads=2, adaln_dim=32, multiple_of=8,
            train_tokens=16, text_dim=32, task_dim=32, semantic_dim=16, sampler_keep=8,
        ),
        text=TextEncoderConfig(kind="random", max_length=16, token_dim=32, pooled_dim=32),
        semantic=SemanticEncoderConfig(kind="conv", dim=16, image_size=32, grid=4, width=16),
        flow=FlowConfig(steps=2),
        max_pixels=1024 * 1024,
    )


def tiny() -> PixWizardConfig:
    """The CPU default: pixel space, patch 8, width 256, depth 6 (DESIGN section 10)."""
    return PixWizardConfig(
        name="tiny",
        model=ModelConfig(
            patch_size=8, dim=256, depth=6, heads=4, kv_heads=2, adaln_dim=256,
            train_tokens=64, text_dim=384, task_dim=384, semantic_dim=128, sampler_keep=32,
            condition_skip=True,  # measured: +7.6 dB restoration, +5 dB edits at equal compute (MODEL_CARD.md)
            sampler_enabled=False,  # ablation: no quality change, training step -22 % time (docs/ablations.md)
        ),
        text=TextEncoderConfig(kind="minilm", max_length=64, token_dim=384, pooled_dim=384),
        semantic=SemanticEncoderConfig(kind="conv", dim=128, image_size=128, grid=8, width=64),
        # shifts 2, measured: +0.53 dB restoration, patch grid 1.77 -> 1.32 (docs/recipe-study.md)
        flow=FlowConfig(steps=4, shifts=2),
    )


def base_2b() -> PixWizardConfig:
    """The paper's configuration (about 2.0B trainable parameters in the DiT)."""
    return PixWizardConfig(
        name="base-2b",
        model=ModelConfig(
            patch_size=2, in_channels=4, dim=2304, depth=24, heads=32, kv_heads=8, adaln_dim=1024,
            multiple_of=256, norm_eps=1e-5, train_tokens=(1024 // 8 // 2) ** 2,
            text_dim=2048, task_dim=768, semantic_dim=1024, sampler_keep=256, sampler_tau=5.0,
        ),
        text=TextEncoderConfig(kind="gemma", name_or_path="google/gemma-2b", max_length=256,
                               token_dim=2048, pooled_dim=768, layer=-2, pooled_kind="clip",
                               pooled_name_or_path="openai/clip-vit-large-patch14-336"),
        semantic=SemanticEncoderConfig(kind="clip", name_or_path="openai/clip-vit-large-patch14-336",
                                       dim=1024, image_size=336),
        codec=CodecConfig(kind="vae", name_or_path="stabilityai/sdxl-vae", latent_channels=4,
                          downsample=8, scaling_factor=0.13025),
        flow=FlowConfig(prediction="velocity", time_sampling="uniform", steps=30,
                        text_guidance=4.0, image_guidance=1.5),
        max_pixels=2048 * 2048,
    )


def official_2b() -> PixWizardConfig:
    """The released PixWizard checkpoint as ``pixwizard convert`` writes it: base-2b's sizes with the
    original's forward conventions (t unscaled, rotated query in the cross-attentions, scoring before
    the norm, no NTK RoPE, attention base 2304 = the 768 bucket) and its sampler defaults (Euler on
    60 time points, text scale 4, image scale 1). docs/official-checkpoint.md."""
    cfg = base_2b()
    return dataclasses.replace(
        cfg, name="official-2b",
        model=dataclasses.replace(cfg.model, train_tokens=(768 // 16) ** 2, timestep_scale=1.0,
                                  cross_attn_rope_query=True, sampler_score_before_norm=True, rope_ntk=False),
        semantic=dataclasses.replace(cfg.semantic, resize="bicubic-align-corners"),
        flow=FlowConfig(prediction="velocity", time_sampling="uniform", steps=59, sample_shift=1.0,
                        text_guidance=4.0, image_guidance=1.0))


PRESETS: dict[str, Callable[[], PixWizardConfig]] = {"debug": debug, "tiny": tiny, "base-2b": base_2b,
                                                     "official-2b": official_2b}


def preset(name: str) -> PixWizardConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
