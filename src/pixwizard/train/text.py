"""Instruction encodings for training: each text encoded alone, cached, batch-independent.

The frozen encoders pad a batch to its longest text; a text's encoding is then equal to its
encoding alone only up to float rounding. Training encodes every *new* text on its own and caches
the result (LRU, on the CPU), so an instruction's encoding never depends on its batch or on what
the cache held: a resumed run sees bitwise the same encodings as an uninterrupted one. Instructions
repeat a lot (templates, the empty null instruction), so most lookups are hits; :meth:`stats`
reports hits and misses (``pixwizard.train.bench`` measures the cost).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from pixwizard.model.encoders.base import TextEncoding


class InstructionCache:
    def __init__(self, encoder, capacity: int = 16384):
        if capacity < 1:
            raise ValueError(f"text cache capacity must be >= 1, got {capacity}")
        self.encoder = encoder
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _one(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        found = self._cache.get(text)
        if found is not None:
            self._cache.move_to_end(text)
            self.hits += 1
            return found
        self.misses += 1
        enc = self.encoder.encode([text])
        n = int(enc.mask[0].sum())
        item = (enc.tokens[0, :n].float().cpu().clone(), enc.pooled[0].float().cpu().clone())
        self._cache[text] = item
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return item

    def encode(self, texts: list[str]) -> TextEncoding:
        """[B, L, D] tokens padded on the right to the longest text, mask True = real token, pooled [B, P]."""
        return TextEncoding.pack([self._one(t) for t in texts])

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._cache)}
