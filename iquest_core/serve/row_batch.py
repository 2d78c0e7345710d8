"""One decode step for many sequences of different lengths, each with its own dual cache.

The model's cached path (`CachedAttention`) needs every row of a batch at the same position. Serving
many requests at once, the rows differ in length, so `RowBatchedAttention` is installed on every layer
(from outside the model, as context parallelism installs its ring): the projections, MLPs and LM head
run on the whole batch (B, 1) at once, and attention runs per row on that row's own LoopCache through
the unchanged `CachedAttention`, so each row computes exactly what `model.generate` computes for it
alone. A forward without a `RowCaches` goes to the layer's original backend.

    install_row_batching(model)
    caches = [model.new_cache() for _ in prompts]          # each prefilled with model(prompt, cache=c)
    logits = decode_step(model, last_tokens, caches)       # (B, vocab) float32, caches advanced by 1
"""

from __future__ import annotations

import torch

from iquest_core.model.backends import AttentionBackend, AttentionMetadata, CachedAttention
from iquest_core.model.cache import LoopCache


class RowCaches:
    """The caches of the rows of one decode batch; `advance` moves every row on (the model calls it)."""

    def __init__(self, rows: list[LoopCache]) -> None:
        self.rows = rows

    def advance(self, num_tokens: int) -> None:
        for row in self.rows:
            row.advance(num_tokens)


class RowBatchedAttention(AttentionBackend):
    """Per-row cached attention for a batch whose meta.cache is a RowCaches; `inner` otherwise."""

    def __init__(self, inner: AttentionBackend) -> None:
        self.inner, self.cached = inner, CachedAttention()

    def check(self, meta: AttentionMetadata) -> None:
        if not isinstance(meta.cache, RowCaches):
            self.inner.check(meta)

    def positions(self, length, device, cu_seqlens=None):
        return self.inner.positions(length, device, cu_seqlens)

    def _rows(self, meta: AttentionMetadata):
        for b, cache in enumerate(meta.cache.rows):
            yield b, AttentionMetadata(meta.positions[b:b + 1], cache=cache)

    def causal(self, q, k, v, meta, layer):
        if not isinstance(meta.cache, RowCaches):
            return self.inner.causal(q, k, v, meta, layer)
        return torch.cat([self.cached.causal(q[b:b + 1], k[b:b + 1], v[b:b + 1], row, layer)
                          for b, row in self._rows(meta)])

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        if not isinstance(meta.cache, RowCaches):
            return self.inner.gated(q, k_global, v_global, k, v, gate_weight, gate_bias, window=window, loop=loop,
                                    meta=meta, layer=layer)
        return torch.cat([self.cached.gated(q[b:b + 1], k_global[b:b + 1], v_global[b:b + 1], k[b:b + 1], v[b:b + 1],
                                            gate_weight, gate_bias, window=window, loop=loop, meta=row, layer=layer)
                          for b, row in self._rows(meta)])


def install_row_batching(model: torch.nn.Module) -> None:
    """Wrap every layer's attention backend in RowBatchedAttention (idempotent)."""
    for layer in model.model.layers:
        if not isinstance(layer.self_attn.backend, RowBatchedAttention):
            layer.self_attn.backend = RowBatchedAttention(layer.self_attn.backend)


@torch.no_grad()
def decode_step(model: torch.nn.Module, tokens: list[int], caches: list[LoopCache]) -> torch.Tensor:
    """Feed token tokens[b] to row b (cache caches[b]) in one batched forward; float32 logits (B, vocab).
    The model must have had install_row_batching."""
    device = model.lm_head.weight.device
    input_ids = torch.tensor(tokens, dtype=torch.long, device=device)[:, None]
    positions = torch.tensor([c.length for c in caches], dtype=torch.long, device=device)[:, None]
    out = model(input_ids, position_ids=positions, cache=RowCaches(caches), logits_to_keep=1)
    return out.logits[:, -1].float()


@torch.no_grad()
def prefill(model: torch.nn.Module, prompt: list[int]) -> tuple[LoopCache, torch.Tensor]:
    """A new cache holding `prompt` and the float32 logits (vocab,) of the token after it."""
    cache = model.new_cache()
    device = model.lm_head.weight.device
    out = model(torch.tensor([prompt], dtype=torch.long, device=device), cache=cache, logits_to_keep=1)
    return cache, out.logits[0, -1].float()
