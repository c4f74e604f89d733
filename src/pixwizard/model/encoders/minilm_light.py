"""The packaged all-MiniLM-L6-v2 without importing transformers: a first ``pixwizard run`` is
about 1-2 s faster on two cores (transformers' import pulls torch.distributed and more).

A BERT encoder (post-LayerNorm, exact GELU, absolute positions, token type 0) in plain torch,
loading the same ``model.safetensors``, and the same fast tokenizer (``tokenizers`` over the
shipped ``tokenizer.json``, which ``transformers.AutoTokenizer`` also uses). Outputs match
``transformers.BertModel`` to float rounding (``tests/test_minilm_light.py``). Used for the packaged
MiniLM only; other text encoders go through transformers.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


class FastBertTokenizer:
    """Called like a Hugging Face tokenizer: ``padding="longest"``, ``truncation``,
    ``max_length``, ``return_tensors="pt"``; right padding with the ``[PAD]`` id."""

    def __init__(self, folder: str) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]")
        self.pad_token, self.eos_token = "[PAD]", None

    def __call__(self, texts: list[str], *, padding: str = "longest", truncation: bool = True,
                 max_length: int = 512, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        if truncation:
            self.tokenizer.enable_truncation(max_length)
        else:
            self.tokenizer.no_truncation()
        encs = self.tokenizer.encode_batch(list(texts))
        n = max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encs), n), dtype=torch.long)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
            mask[i, :len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class _Linear(nn.Linear):
    def reset_parameters(self) -> None:  # no random initialisation: every weight comes from the file
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = _Linear(d, d), _Linear(d, d), _Linear(d, d)
        self.attn_out, self.attn_norm = _Linear(d, d), nn.LayerNorm(d, eps=eps)
        self.inner, self.out, self.out_norm = _Linear(d, inner), _Linear(inner, d), nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                           attn_mask=keep)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.out(F.gelu(self.inner(x))))


class LightBert(nn.Module):
    """BERT's encoder (no pooler); ``forward`` returns ``last_hidden_state`` and, on request,
    ``hidden_states`` (embeddings + every layer), like ``transformers.BertModel``."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("the light MiniLM supports BERT with gelu and absolute positions only")
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.config = SimpleNamespace(**config)
        self.word = _Embedding(config["vocab_size"], d)
        self.position = _Embedding(config["max_position_embeddings"], d)
        self.token_type = _Embedding(config["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(_Layer(d, config["num_attention_heads"], config["intermediate_size"], eps)
                                    for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, **_: object) -> SimpleNamespace:
        n = input_ids.shape[1]
        pos = torch.arange(n, device=input_ids.device)
        x = self.norm(self.word(input_ids) + self.position(pos)[None] + self.token_type.weight[0])
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        keep = mask.bool()[:, None, None, :]
        states = [x]
        for layer in self.layers:
            x = layer(x, keep)
            states.append(x)
        return SimpleNamespace(last_hidden_state=x, hidden_states=tuple(states) if output_hidden_states else None)

    def load_bert_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``BertModel`` state dict (``embeddings.*``, ``encoder.layer.N.*``; pooler ignored)."""
        names = {"embeddings.word_embeddings.weight": "word.weight",
                 "embeddings.position_embeddings.weight": "position.weight",
                 "embeddings.token_type_embeddings.weight": "token_type.weight",
                 "embeddings.LayerNorm.weight": "norm.weight", "embeddings.LayerNorm.bias": "norm.bias"}
        parts = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
                 "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
                 "intermediate.dense": "inner", "output.dense": "out", "output.LayerNorm": "out_norm"}
        for i in range(len(self.layers)):
            for src, dst in parts.items():
                for kind in ("weight", "bias"):
                    names[f"encoder.layer.{i}.{src}.{kind}"] = f"layers.{i}.{dst}.{kind}"
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        missing = [k for k in names if k not in state]
        if missing:
            raise ValueError(f"not a BERT checkpoint: missing {missing[:3]}")
        self.load_state_dict({dst: state[src] for src, dst in names.items()}, strict=True, assign=True)


def load_light_minilm(folder: str, dtype: torch.dtype | None = None) -> tuple[FastBertTokenizer, LightBert]:
    """The tokenizer and encoder of a BERT folder (``config.json``, ``tokenizer.json``,
    ``model.safetensors``), in ``dtype`` (default: the file's)."""
    from safetensors.torch import load_file

    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"MiniLM file not found: {os.path.join(folder, name)}")
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    model = LightBert(config)  # uninitialised (a meta-device build would import torch._dynamo: slower)
    model.load_bert_state(load_file(os.path.join(folder, "model.safetensors")))
    if dtype is not None:
        model = model.to(dtype)
    return FastBertTokenizer(folder), model.eval()
