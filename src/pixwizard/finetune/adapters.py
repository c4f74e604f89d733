"""LoRA adapters through peft: inject, save as a small safetensors file, load several, select, merge.

An adapter file holds the LoRA tensors of one adapter (peft's names without the adapter name,
e.g. ``dit.layers.0.attention.wqkv.lora_A.weight``) and metadata: ``format``
(:data:`ADAPTER_FORMAT`), ``adapter_name``, ``lora`` (rank, alpha, dropout, target regex),
``base_config`` (the base model's resolved config as JSON: loading refuses another shape),
``base_trained_samples`` and the new task's config (``pixwizard_task``, see
:mod:`pixwizard.finetune.tasks`). Loading the file registers that task.

Several adapters can be loaded into one model (each under its name) and one is active at a time
(:func:`set_active`); :func:`merge` folds the active adapter into the base weights and removes
the LoRA layers, leaving a plain PixWizard model (saved with ``pixwizard.checkpoint.save_model``).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

from pixwizard.checkpoint import atomic_save_safetensors

ADAPTER_FORMAT = "pixwizard-lora-1"


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    dropout: float
    target_regex: str

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_regex, bias="none")

    def to_json(self) -> str:
        return json.dumps({"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
                           "target_regex": self.target_regex}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LoraSpec":
        d = json.loads(text)
        return cls(int(d["rank"]), float(d["alpha"]), float(d["dropout"]), str(d["target_regex"]))


def target_regex(targets: tuple[str, ...]) -> str:
    """peft's full-match regex for ``targets`` (module paths inside a DiT block) in every block."""
    alt = "|".join(re.escape(t) for t in targets)
    return rf"dit\.layers\.\d+\.(?:{alt})"


def _tuner_layers(model: nn.Module) -> list[nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapters loaded into ``model`` (in load order)."""
    layers = _tuner_layers(model)
    return list(getattr(model, "_pixwizard_adapters", [])) if layers else []


def inject(model: nn.Module, spec: LoraSpec, name: str) -> nn.Module:
    """Add a fresh (B = 0, so the model is unchanged) LoRA adapter ``name``; only its weights train."""
    from peft import inject_adapter_in_model

    if name in adapter_names(model):
        raise ValueError(f"an adapter named {name!r} is already loaded")
    matched = [n for n, _ in model.named_modules() if re.fullmatch(spec.target_regex, n)]
    if not matched:
        raise ValueError(f"no module of the model matches the LoRA targets ({spec.target_regex})")
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multiple adapters.*")  # several adapters are intended
        inject_adapter_in_model(spec.peft_config(), model, adapter_name=name)
    for n, p in model.named_parameters():  # peft freezes the base: keep its flags (checkpoints rely on them)
        base = n.replace(".base_layer.", ".")
        if ".lora_" not in n and base in flags:
            p.requires_grad_(flags[base])
    model._pixwizard_adapters = [*getattr(model, "_pixwizard_adapters", []), name]
    set_active(model, name)
    return model


def set_active(model: nn.Module, name: str | None) -> None:
    """Make adapter ``name`` the one applied (None: no adapter, the base model)."""
    names = adapter_names(model)
    if name is not None and name not in names:
        raise ValueError(f"no adapter named {name!r} is loaded; loaded: {', '.join(names) or 'none'}")
    for layer in _tuner_layers(model):
        if name is None:
            layer.enable_adapters(False)
        else:
            layer.enable_adapters(True)
            layer.set_adapter(name)
    for n, p in model.named_parameters():  # set_adapter marks the active one trainable; inference keeps it frozen
        if ".lora_" in n:
            p.requires_grad_(name is not None and f".{name}." in n and model.training)


def adapter_state(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model, adapter_name=name).items()}


def save_adapter(model: nn.Module, name: str, spec: LoraSpec, path: str | Path, *, base_config_json: str,
                 base_trained_samples: int, extra: dict[str, str] | None = None) -> Path:
    meta = {"format": ADAPTER_FORMAT, "adapter_name": name, "lora": spec.to_json(),
            "base_config": base_config_json, "base_trained_samples": str(int(base_trained_samples))}
    meta.update(extra or {})
    atomic_save_safetensors(adapter_state(model, name), path, meta)
    return Path(path)


def read_adapter_meta(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors' own error types for a damaged header
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    if meta.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path} is not a PixWizard adapter (format {meta.get('format')!r}); "
                         f"a full model goes to --checkpoint")
    return meta


def load_adapter(model: nn.Module, path: str | Path, name: str | None = None) -> str:
    """Load an adapter file into ``model`` under ``name`` (default: the file's name), make it the
    active one and register its task; returns the name."""
    from peft import set_peft_model_state_dict

    from pixwizard.finetune.tasks import register_from_metadata

    meta = read_adapter_meta(path)
    base = json.loads(meta["base_config"])
    if base.get("model") != model.config.to_dict().get("model"):
        raise ValueError(f"adapter {path} was trained on a different model shape "
                         f"({base.get('name')!r}) than the loaded one ({model.config.name!r})")
    name = name or meta["adapter_name"]
    spec = LoraSpec.from_json(meta["lora"])
    was_training = model.training
    inject(model, spec, name)
    state = load_file(str(path), device="cpu")
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ValueError(f"adapter {path} has tensors the model lacks: {unexpected[:3]}")
    model.train(was_training)
    set_active(model, name)
    if register_from_metadata(meta) is not None:
        from pixwizard.tasks.routing import default_router

        default_router.cache_clear()  # the process-wide router is rebuilt with the new task
    dev = next(model.parameters()).device
    model.to(dev)
    return name


def merge(model: nn.Module, name: str) -> nn.Module:
    """Fold adapter ``name`` into the base weights and remove every LoRA layer (others are dropped)."""
    if name not in adapter_names(model):
        raise ValueError(f"no adapter named {name!r} is loaded")
    for layer in _tuner_layers(model):
        layer.merge(adapter_names=[name])
    tuners = {id(m) for m in _tuner_layers(model)}
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if id(child) in tuners:
                setattr(parent, child_name, child.get_base_layer())
    model._pixwizard_adapters = []
    return model


def apply_adapters(pipe, paths: list[str], active: str | None = None, merge_active: bool = False) -> str:
    """Load adapter files into a pipeline (a name already taken falls back to the file's stem),
    apply ``active`` (default: the last one) and optionally merge it; returns the applied name."""
    if not paths:
        raise ValueError("--adapter-name and --merge-adapter need at least one --adapter FILE")
    names = []
    for path in paths:
        taken = read_adapter_meta(path)["adapter_name"] in adapter_names(pipe.model)
        names.append(pipe.load_adapter(path, Path(path).stem if taken else None))
    name = active or names[-1]
    pipe.set_adapter(name)
    if merge_active:
        pipe.merge_adapter(name)
    return name
