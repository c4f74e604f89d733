"""Instruction routing: a free-form instruction -> the task it asks for, with a confidence.

``TaskRouter`` fills every phrasing of the bank's split with generic slot values
(``instructions.FILLERS["train"]``), represents each text by two L2-normalised parts,
``[embed_scale * sentence embedding || lexical_scale * TF-IDF of word unigrams and bigrams]``,
and fits a multinomial logistic regression (a linear probe, L-BFGS from zero weights: fully
deterministic) on them. With ``cache_dir`` the fitted weights are stored on disk under a hash of
the bank, the settings and a fingerprint of ``embed_fn``, so later processes skip embedding the
bank (about 20 s on two CPU cores). Routing returns the most probable task, its probability as the
confidence, and the next most probable tasks as alternatives.

Why a probe rather than plain nearest neighbour: on the held-out phrasings with held-out slot
values, cosine nearest neighbour / k-NN + centroid over MiniLM embeddings reached 88%; slot
values (objects, captions) dominate sentence embeddings. The probe learns which directions and
which words name a task, and the TF-IDF part ignores words it never saw (new slot values) while
keeping exact task words ("canny", "4x", "circle"). Measured: 97.5% (see tests/test_routing.py).

The sentence embedding comes from ``embed_fn(list[str]) -> Tensor [N, D]`` (pooled vectors;
normalised here). ``default_embed_fn()`` is the pooled vector of the project's text encoder
(``pixwizard.model.encoders.text.build_text_encoder(TextEncoderConfig())``, the packaged MiniLM).
Bank features are computed once per router; ``default_router()`` keeps one router per process and
caches its fitted weights in ``default_cache_dir()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pixwizard.tasks.instructions import fill_with_fillers, phrasings
from pixwizard.tasks.registry import REGISTRY

EmbedFn = Callable[[list[str]], torch.Tensor]

DEFAULT_THRESHOLD = 0.5
# An instruction whose sentence embedding has cosine below this to every task prototype matches no
# task well (measured on tests/fixtures/everyday_requests.json: requests >= 0.43, off-topic <= 0.36).
NO_MATCH_SIMILARITY = 0.39
PROTOTYPES_PER_TASK = 8
# Tasks that differ only in a detail people rarely say ("less blurry" fits all three deblur tasks):
# routing first picks the family by its summed probability, then the most probable member, so the
# members do not split the vote and lose to a single unrelated task.
FAMILIES: dict[str, tuple[str, ...]] = {
    "deblur": ("deblur_motion", "deblur_defocus", "deblur_gaussian"),
    "super-resolution": ("sr_x2", "sr_x4"),
    "inpainting": ("inpaint_freeform", "inpaint_box", "inpaint_circle"),
}
# The fitted router shipped in the package for the default text encoder (the packaged MiniLM):
# regenerate with `python -m pixwizard.tasks.ship_router` when the bank or the settings change.
SHIPPED_ROUTER = Path(__file__).with_name("router.safetensors")


class RouterCacheWarning(UserWarning):
    """The on-disk router cache could not be read or written; routing works, only slower next time."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


@dataclass
class Route:
    """The routed task, its probability, the next best tasks and whether it is below the threshold."""

    task: str
    confidence: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    low_confidence: bool = False
    similarity: float | None = None  # cosine to the nearest task prototype (None: router has none)
    no_match: bool = False  # similarity below the no-match threshold: the instruction fits no task well

    def message(self) -> str:
        """One line for a user: the task, the confidence and, when low, the closest tasks."""
        line = f"{self.task} (confidence {self.confidence:.2f})"
        if self.no_match:
            close = ", ".join(f"{t} {p:.2f}" for t, p in [(self.task, self.confidence), *self.alternatives])
            return (f"no task matches this instruction well (similarity {self.similarity:.2f} to the nearest "
                    f"task phrasing); the closest tasks are: {close}")
        if self.low_confidence:
            close = ", ".join(f"{t} {p:.2f}" for t, p in self.alternatives)
            line += f"; low confidence, the instruction may also mean: {close}"
        return line


_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class TfidfFeatures:
    """TF-IDF over lower-case word unigrams and bigrams, vocabulary fitted on the bank texts.

    ``idf = log((1 + N) / (1 + df)) + 1``; rows are L2-normalised; words outside the vocabulary
    (e.g. new object names) are ignored.
    """

    def __init__(self, texts: list[str]) -> None:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(_tokens(text)))
        self.vocab = {word: i for i, word in enumerate(sorted(df))}
        n = len(texts)
        self.idf = torch.tensor([math.log((1.0 + n) / (1.0 + df[w])) + 1.0 for w in sorted(df)],
                                dtype=torch.float32)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        x = torch.zeros(len(texts), len(self.vocab))
        for row, text in enumerate(texts):
            for tok in _tokens(text):
                col = self.vocab.get(tok)
                if col is not None:
                    x[row, col] += 1.0
        return F.normalize(x * self.idf, dim=1)


def _embed(embed_fn: EmbedFn, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """``embed_fn`` over ``texts`` in length-sorted batches; rows L2-normalised, float32, CPU."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts: dict[int, torch.Tensor] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        with torch.no_grad():
            out = embed_fn([texts[i] for i in idx])
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(idx):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"embed_fn must return a [N, D] tensor for N texts; got {shape} for N={len(idx)}")
        for i, row in zip(idx, out.detach().float().cpu()):
            parts[i] = row
    return F.normalize(torch.stack([parts[i] for i in range(len(texts))]), dim=1)


class TaskRouter:
    """Route instructions to task ids (see module doc)."""

    def __init__(self, embed_fn: EmbedFn | None = None, split: Literal["train", "all"] = "train", *,
                 embed_scale: float = 5.0, lexical_scale: float = 5.0, weight_decay: float = 1e-4,
                 max_iter: int = 100, cache_dir: str | os.PathLike | None = None,
                 shipped: str | os.PathLike | None = None, embed_id: str | None = None) -> None:
        self.embed_fn = embed_fn if embed_fn is not None else default_embed_fn()
        self.split = split
        self.embed_scale, self.lexical_scale = embed_scale, lexical_scale
        self.tasks: tuple[str, ...] = tuple(REGISTRY)
        texts, labels = router_bank(self.tasks, split)
        self.bank_texts = texts
        self.bank_labels = torch.tensor(labels)
        self.lexical = TfidfFeatures(texts)
        self.cache_note: str | None = None  # why the on-disk cache was not used, if it was not
        self.prototypes: torch.Tensor | None = None  # [P, D] unit sentence embeddings, P per task
        self.shipped_key = self.portable_key(embed_id, weight_decay, max_iter) if embed_id else None
        shipped_fit = self._read_shipped(Path(shipped)) if shipped is not None and self.shipped_key else None
        cache = None
        if cache_dir is not None and shipped_fit is None:
            key = self._cache_key(weight_decay, max_iter)
            cache = Path(cache_dir) / f"router-{key}.safetensors"
        fitted = shipped_fit or (self._read_cache(cache) if cache is not None else None)
        if fitted is not None:
            self.weight, self.bias = fitted
        else:
            emb = _embed(self.embed_fn, texts)
            self.prototypes = _prototypes(emb, self.bank_labels, len(self.tasks), PROTOTYPES_PER_TASK)
            self.weight, self.bias = self._fit(self._features(texts, emb), self.bank_labels, weight_decay, max_iter)
            if cache is not None:
                self._write_cache(cache)
        if self.cache_note:
            warnings.warn(self.cache_note, RouterCacheWarning, stacklevel=2)

    def _read_cache(self, cache: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The cached (weight, bias), or None when there is none or it cannot be used (unreadable,
        truncated, wrong shapes, non-finite): then the router is refitted and the file rewritten."""
        try:
            if not cache.is_file():
                return None
            fitted = load_file(str(cache))
            weight, bias = fitted["weight"], fitted["bias"]
            self.prototypes = fitted.get("prototypes")
        except Exception as e:  # safetensors raises its own error types for a damaged file
            self.cache_note = f"the router cache {cache} is unreadable ({_one_line(e)}); refitted the router"
            return None
        n = len(self.tasks)
        if (bias.shape != (n,) or weight.ndim != 2 or weight.shape[1] != n
                or not (torch.isfinite(weight).all() and torch.isfinite(bias).all())):
            self.cache_note = f"the router cache {cache} does not match the task registry; refitted the router"
            return None
        return weight, bias

    def _write_cache(self, cache: Path) -> None:
        """Store the fitted weights atomically; a cache that cannot be written only costs the refit
        next time (the note says so), it never fails the routing."""
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous(),
                       **({"prototypes": self.prototypes} if self.prototypes is not None else {})}, str(tmp))
            os.replace(tmp, cache)
        except Exception as e:
            note = f"the router cache {cache} cannot be written ({_one_line(e)}); the next run refits the router"
            self.cache_note = f"{self.cache_note}; {note}" if self.cache_note else note
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass

    def _cache_key(self, weight_decay: float, max_iter: int) -> str:
        """Hash of everything the fitted weights depend on: the bank texts and labels, the settings and
        a fingerprint of ``embed_fn`` (its rounded vectors for two fixed probe sentences)."""
        probe = _embed(self.embed_fn, ["pixwizard router fingerprint", "remove the rain from the photo"])
        h = hashlib.sha256()
        h.update(json.dumps([self.bank_texts, self.bank_labels.tolist(), self.tasks, self.embed_scale,
                             self.lexical_scale, weight_decay, max_iter, torch.__version__]).encode())
        h.update(json.dumps(torch.round(probe * 1e4).int().tolist()).encode())
        return h.hexdigest()[:20]

    def _features(self, texts: list[str], emb: torch.Tensor | None = None) -> torch.Tensor:
        emb = _embed(self.embed_fn, texts) if emb is None else emb
        return torch.cat([self.embed_scale * emb, self.lexical_scale * self.lexical(texts)], dim=1)

    def portable_key(self, embed_id: str, weight_decay: float, max_iter: int) -> str:
        """Keys the shipped router: see :func:`portable_key`."""
        return portable_key(self.bank_texts, self.bank_labels.tolist(), self.tasks, embed_id,
                            (self.embed_scale, self.lexical_scale, weight_decay, max_iter))

    def _read_shipped(self, path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The shipped fit when ``path`` holds one for this very bank, settings and embedding model."""
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != self.shipped_key:
                    return None
                fitted = {k: f.get_tensor(k).float() for k in f.keys()}
        except Exception:  # missing or damaged: fit (or use the cache) as without a shipped file
            return None
        self.prototypes = fitted.get("prototypes")
        return fitted["weight"], fitted["bias"]

    def save_shipped(self, path: str | os.PathLike) -> None:
        """Write this fit for shipping (fp16 weights and prototypes; metadata ``key``), atomically."""
        if self.shipped_key is None or self.prototypes is None:
            raise ValueError("only a router built with embed_id and fitted here can be shipped")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"weight": self.weight.half().contiguous(), "bias": self.bias.contiguous(),
                   "prototypes": self.prototypes.half().contiguous()}, str(tmp),
                  metadata={"key": self.shipped_key, "tasks": ",".join(self.tasks)})
        os.replace(tmp, path)

    def _fit(self, x: torch.Tensor, y: torch.Tensor, weight_decay: float,
             max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.zeros(x.shape[1], len(self.tasks), requires_grad=True)
        b = torch.zeros(len(self.tasks), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(x @ w + b, y) + weight_decay * (w * w).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return w.detach(), b.detach()

    def probabilities(self, instructions: list[str]) -> torch.Tensor:
        """[B, T] task probabilities, columns in ``self.tasks`` order."""
        if not instructions or any(not str(s).strip() for s in instructions):
            raise ValueError("instructions must be non-empty strings")
        return self._scores(list(instructions))[0]

    def _scores(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, T] probabilities and [B] cosine to the nearest prototype (None without prototypes)."""
        if not instructions or any(not str(s).strip() for s in instructions):
            raise ValueError("instructions must be non-empty strings")
        emb = _embed(self.embed_fn, instructions)
        probs = torch.softmax(self._features(instructions, emb) @ self.weight + self.bias, dim=1)
        if self.prototypes is None or self.prototypes.shape[1] != emb.shape[1]:
            return probs, None
        return probs, (emb @ self.prototypes.float().T).max(1).values

    def route_batch(self, instructions: list[str], threshold: float = DEFAULT_THRESHOLD,
                    top: int = 3) -> list[Route]:
        """Route many instructions. A family of near-identical tasks (``FAMILIES``) competes with its
        summed probability, then its most probable member is the task and the sum its confidence.
        ``low_confidence`` is set where that confidence < ``threshold`` or nothing matches well
        (``no_match``: similarity to every task prototype below ``NO_MATCH_SIMILARITY``)."""
        probs, sims = self._scores(list(instructions))
        routes = []
        for row, row_probs in enumerate(probs.tolist()):
            p = dict(zip(self.tasks, row_probs))
            units = {t: (v, t) for t, v in p.items()}
            for members in FAMILIES.values():
                present = [t for t in members if t in p]
                if present:
                    best = max(present, key=p.__getitem__)
                    for t in present:
                        units.pop(t)
                    units[best] = (sum(p[t] for t in present), best)
            task, (conf, _) = max(units.items(), key=lambda kv: kv[1][0])
            others = sorted((t for t in self.tasks if t != task), key=p.__getitem__, reverse=True)[:top]
            sim = None if sims is None else float(sims[row])
            no_match = sim is not None and sim < NO_MATCH_SIMILARITY
            routes.append(Route(task=task, confidence=min(1.0, conf), alternatives=[(t, p[t]) for t in others],
                                low_confidence=conf < threshold or no_match, similarity=sim, no_match=no_match))
        return routes

    def route(self, instruction: str, threshold: float = DEFAULT_THRESHOLD, top: int = 3) -> Route:
        """Route one instruction (see ``route_batch``)."""
        return self.route_batch([instruction], threshold, top)[0]


@dataclass
class RoutingReport:
    """Accuracy of a router on a set of labelled instructions."""

    accuracy: float
    count: int
    errors: list[tuple[str, str, str]]  # (instruction, true task, routed task)
    per_task: dict[str, float]


def heldout_instructions() -> list[tuple[str, str]]:
    """(instruction, task) for every held-out phrasing, filled with the held-out slot values."""
    return [(fill_with_fillers(t, i, "heldout"), task)
            for task in REGISTRY for i, t in enumerate(phrasings(task, "heldout"))]


def evaluate_router(router: TaskRouter, labelled: list[tuple[str, str]] | None = None) -> RoutingReport:
    """Accuracy of ``router`` on ``labelled`` (default: all held-out phrasings, held-out slot values)."""
    labelled = heldout_instructions() if labelled is None else labelled
    routes = router.route_batch([text for text, _ in labelled])
    errors = [(text, truth, r.task) for (text, truth), r in zip(labelled, routes) if r.task != truth]
    totals, right = Counter(t for _, t in labelled), Counter(t for (_, t), r in zip(labelled, routes) if r.task == t)
    return RoutingReport(accuracy=1.0 - len(errors) / len(labelled), count=len(labelled), errors=errors,
                         per_task={t: right[t] / n for t, n in totals.items()})


def text_encoder_embed_fn(encoder=None) -> EmbedFn:
    """``encoder.encode(texts).pooled`` as an embed function; ``encoder`` defaults to the project's
    text encoder built from ``TextEncoderConfig()`` (the packaged MiniLM: mean-pooled, L2-normalised,
    384-d, offline)."""
    if encoder is None:
        from pixwizard.config import TextEncoderConfig
        from pixwizard.model.encoders.text import build_text_encoder

        encoder = build_text_encoder(TextEncoderConfig())
    return lambda texts: encoder.encode(texts).pooled


def default_embed_fn() -> EmbedFn:
    """The default embed function: the pooled vector of the default text encoder."""
    return text_encoder_embed_fn()


def default_cache_dir() -> Path:
    """Where fitted routers are cached: ``$PIXWIZARD_CACHE`` or ``$XDG_CACHE_HOME/pixwizard``
    (``~/.cache/pixwizard`` by default)."""
    if os.environ.get("PIXWIZARD_CACHE"):
        return Path(os.environ["PIXWIZARD_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pixwizard"


@lru_cache(maxsize=1)
def router_phrasings() -> dict[str, tuple[str, ...]]:
    """Everyday wordings per task that only the router trains on (``tasks/router_phrasings.json``)."""
    doc = json.loads((Path(__file__).with_name("router_phrasings.json")).read_text())
    return {task: tuple(items) for task, items in doc.items() if not task.startswith("_")}


def router_bank(tasks: tuple[str, ...], split: Literal["train", "all"] = "train") -> tuple[list[str], list[int]]:
    """The router's training texts and labels: every bank phrasing of ``split`` and the router-only
    everyday wordings, filled with the train slot values."""
    texts, labels = [], []
    everyday = router_phrasings()
    for label, task in enumerate(tasks):
        for i, template in enumerate([*phrasings(task, split), *everyday.get(task, ())]):
            texts.append(fill_with_fillers(template, i, "train"))
            labels.append(label)
    return texts, labels


def portable_key(texts: list[str], labels: list[int], tasks: tuple[str, ...], embed_id: str,
                 settings: tuple[float, float, float, int]) -> str:
    """Hash of what a fit depends on, independent of the machine: the bank texts and labels, the
    settings (embed scale, lexical scale, weight decay, iterations), the prototype count and
    ``embed_id`` (names the embedding model's files)."""
    doc = [texts, labels, list(tasks), list(settings), PROTOTYPES_PER_TASK, embed_id]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:20]


def _prototypes(emb: torch.Tensor, labels: torch.Tensor, n_tasks: int, k: int) -> torch.Tensor:
    """``k`` spread-out bank embeddings per task by farthest-point selection (deterministic): the
    first is the one nearest the task's mean, each next one the least similar to those chosen."""
    out = []
    for label in range(n_tasks):
        x = emb[labels == label]
        chosen = [int((x @ x.mean(0)).argmax())]
        while len(chosen) < min(k, len(x)):
            chosen.append(int((x @ x[chosen].T).max(1).values.argmin()))
        out.append(x[chosen])
    return torch.cat(out).contiguous()


def minilm_identity() -> str:
    """Names the packaged MiniLM by its files (config, tokenizer, weight size): keys the shipped router."""
    from pixwizard.model.encoders.text import minilm_path

    root = Path(minilm_path())
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "vocab.txt"):
        h.update((root / name).read_bytes())
    h.update(str((root / "model.safetensors").stat().st_size).encode())
    return f"all-MiniLM-L6-v2:{h.hexdigest()[:16]}"


def shipped_router(embed_fn: EmbedFn | None = None, cache_dir: str | os.PathLike | None = None) -> TaskRouter:
    """A router over the packaged MiniLM (``embed_fn`` must be it, e.g. the pipeline's own text
    encoder): the shipped fit when it matches the bank, else the cache, else a fit."""
    return TaskRouter(embed_fn, cache_dir=cache_dir, shipped=SHIPPED_ROUTER, embed_id=minilm_identity())


@lru_cache(maxsize=1)
def default_router() -> TaskRouter:
    """One router per process over the train phrasings with ``default_embed_fn()``; its fitted
    weights are cached on disk (``default_cache_dir()``), so only the first run embeds the bank."""
    return shipped_router(default_embed_fn(), cache_dir=default_cache_dir())
