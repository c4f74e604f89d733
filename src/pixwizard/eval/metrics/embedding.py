"""Embedding similarities: CLIP-I, CLIP-T (a CLIP model) and DINO (a DINO / DINOv2 ViT).

Conventions:
- images are HxWx3 uint8 RGB; the model's own image processor (saved beside its weights)
  resizes and normalises them;
- every score is the raw cosine similarity in [-1, 1] of L2-normalised embeddings (no x100
  scaling, no clamping at 0), as MagicBrush / Emu Edit report CLIP-I, CLIP-T and DINO;
- CLIP-I: cosine of the projected image embeddings of output and reference;
  CLIP-T: cosine of the projected image embedding and the projected text embedding;
  DINO: cosine of the CLS token of ``last_hidden_state`` (post-layernorm) of output and reference;
- weights load with ``local_files_only=True``: a local folder, or a hub id already in the local
  cache. When they are not there, ``MetricUnavailable`` is raised (nothing is downloaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checks import as_rgb_uint8
from .errors import MetricUnavailable


def _load_local(loader: Any, path: str | Path, what: str, metric: str) -> Any:
    try:
        return loader.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:  # transformers: OSError for missing files, ValueError for bad ids
        raise MetricUnavailable(
            f"{metric} skipped: {what} not available offline at {path!s} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'not found'}); save the model with "
            f"save_pretrained() to a local folder and pass that path") from exc


def _pooled(out: Any) -> torch.Tensor:
    """transformers < 5 returns a tensor from get_*_features, >= 5 an output with pooler_output."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).item())


class _ImageEmbedder:
    metric = "embedding"

    def __init__(self, model_path: str | Path, model_loader: Any, device: str | torch.device = "cpu") -> None:
        from transformers import AutoImageProcessor

        self.device = torch.device(device)
        self.model = _load_local(model_loader, model_path, "model weights", self.metric).to(self.device).eval()
        self.processor = _load_local(AutoImageProcessor, model_path, "image processor", self.metric)

    def _pixels(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        arrays = [as_rgb_uint8(im, f"images[{i}]") for i, im in enumerate(images)]
        return self.processor(images=arrays, return_tensors="pt")["pixel_values"].to(self.device)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """[N, D] float32 L2-normalised embeddings of N uint8 RGB images."""
        feats = self._image_features(self._pixels(images)).float()
        return torch.nn.functional.normalize(feats, dim=-1)

    def image_similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        emb = self.image_embeddings([a, b])
        return _cosine(emb[0], emb[1])


class ClipScorer(_ImageEmbedder):
    """CLIP-I and CLIP-T from a local ``CLIPModel`` folder (weights, image processor, tokenizer)."""

    metric = "CLIP"

    def __init__(self, model_path: str | Path, device: str | torch.device = "cpu") -> None:
        from transformers import AutoTokenizer, CLIPModel

        super().__init__(model_path, CLIPModel, device)
        self.tokenizer = _load_local(AutoTokenizer, model_path, "tokenizer", self.metric)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, D] float32 L2-normalised projected text embeddings."""
        max_len = self.model.config.text_config.max_position_embeddings
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_len,
                             return_tensors="pt").to(self.device)
        feats = _pooled(self.model.get_text_features(input_ids=tok["input_ids"],
                                                     attention_mask=tok["attention_mask"]))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def clip_i(self, pred: np.ndarray, reference: np.ndarray) -> float:
        """Cosine of CLIP image embeddings of ``pred`` and ``reference``."""
        return self.image_similarity(pred, reference)

    def clip_t(self, image: np.ndarray, text: str) -> float:
        """Cosine of the CLIP image embedding of ``image`` and the text embedding of ``text``."""
        return _cosine(self.image_embeddings([image])[0], self.text_embeddings([text])[0])


class DinoScorer(_ImageEmbedder):
    """DINO similarity from a local ViT / DINOv2 folder loaded with ``AutoModel``."""

    metric = "DINO"

    def __init__(self, model_path: str | Path, device: str | torch.device = "cpu") -> None:
        from transformers import AutoModel

        super().__init__(model_path, AutoModel, device)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels)
        if getattr(out, "last_hidden_state", None) is None:
            raise ValueError(f"{type(self.model).__name__} gives no last_hidden_state; DINO needs a ViT")
        return out.last_hidden_state[:, 0]

    def dino(self, pred: np.ndarray, reference: np.ndarray) -> float:
        """Cosine of DINO CLS embeddings of ``pred`` and ``reference``."""
        return self.image_similarity(pred, reference)
