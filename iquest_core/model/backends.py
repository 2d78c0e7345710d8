"""Attention backends of LoopCoder: how one layer's two kinds of attention run for a batch.

Every layer calls its backend with post-RoPE q (B, L, H, D) and k, v (B, L, Hkv, D):

- `causal(q, k, v, meta, layer)`: loop 1, ordinary causal attention;
- `gated(q, k_global, v_global, k, v, gate_weight, gate_bias, window=, loop=, meta=, layer=)`: loops
  >= 2, gated loop attention of q over loop-1 K/V (global, causal) and this loop's K/V (window W).

`AttentionMetadata` carries what the batch's layout is (positions, packed documents, decode cache),
built once per forward. `LocalAttention` (the default) runs one process: dense batches, packed
documents or cached decoding, as the metadata says. Other backends are installed from outside the
model (context parallelism's apply_cp installs the ring backend); the model imports nothing distributed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from iquest_core.model.cache import LoopCache
from iquest_core.ops import attention_with_lse, loop_attention
from iquest_core.ops.gate import gate_mix
from iquest_core.ops.reference import loop_attention_banded, loop_attention_reference


@dataclass
class AttentionMetadata:
    """The batch layout every layer's attention reads.

    positions (B, L): RoPE positions of the tokens. cu_seqlens (num_docs + 1,) int32 with B = 1: packed
    documents (no attention across them; under context parallelism those of the whole sequence, not of
    this rank's shard); max_seqlen: optional bound on the longest one. cache: the
    decode caches, the new tokens sitting at positions cache.length .. cache.length + L - 1."""

    positions: torch.Tensor
    cu_seqlens: torch.Tensor | None = None
    max_seqlen: int | None = None
    cache: LoopCache | None = None

    @cached_property
    def host_cu_seqlens(self) -> torch.Tensor | None:
        """cu_seqlens on the CPU, copied once per forward for backends that plan blocks on the host (one
        device synchronisation instead of one per layer)."""
        return None if self.cu_seqlens is None else self.cu_seqlens.cpu()


class AttentionBackend:
    """One layer's attention for a batch (see the module docstring for the two calls)."""

    def check(self, meta: AttentionMetadata) -> None:
        """Raises ValueError when this backend cannot run a batch of that layout."""

    def positions(self, length: int, device: torch.device, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        """Default positions (L,) of a sequence of `length` local tokens; with packed documents
        (cu_seqlens) they restart at 0 at every document start."""
        if cu_seqlens is not None:
            return packed_position_ids(cu_seqlens, length)
        return torch.arange(length, device=device)

    def causal(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: AttentionMetadata,
               layer: int) -> torch.Tensor:
        raise NotImplementedError

    def gated(self, q: torch.Tensor, k_global: torch.Tensor, v_global: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor, gate_weight: torch.Tensor, gate_bias: torch.Tensor, *, window: int, loop: int,
              meta: AttentionMetadata, layer: int) -> torch.Tensor:
        raise NotImplementedError


def packed_position_ids(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """(T,) int64 positions restarting at 0 at each document start in cu_seqlens."""
    idx = torch.arange(total, device=cu_seqlens.device)
    doc = torch.searchsorted(cu_seqlens, idx.to(cu_seqlens.dtype), right=True) - 1
    return idx - cu_seqlens.long()[doc]


def _without_max_seqlen(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """fn behind loop_attention's signature (max_seqlen is only a hint)."""
    def call(*args, max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
        return fn(*args, **kwargs)
    return call


# The gated loop attention of loops >= 2, by `attn_implementation`: the fused op; the unfused composition
# with an L x L window mask, as inference engines run it; the unfused composition with a banded window.
LOOP_ATTENTION: dict[str, Callable[..., torch.Tensor]] = {"fused": loop_attention,
                                                          "reference": _without_max_seqlen(loop_attention_reference),
                                                          "banded": _without_max_seqlen(loop_attention_banded)}


class DenseAttention(AttentionBackend):
    """B equal-length sequences: SDPA for loop 1, the given loop attention for later loops."""

    def __init__(self, loop_attention_fn: Callable[..., torch.Tensor]) -> None:
        self.loop_attention = loop_attention_fn

    def causal(self, q, k, v, meta, layer):
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                             enable_gqa=True)
        return out.transpose(1, 2)

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        return self.loop_attention(q, k_global, v_global, k, v, gate_weight, gate_bias, window=window)


class PackedAttention(DenseAttention):
    """Packed documents (B = 1, cu_seqlens): the varlen kernels, which build no (T, T) mask."""

    def causal(self, q, k, v, meta, layer):
        return attention_with_lse(q[0], k[0], v[0], cu_seqlens=meta.cu_seqlens, max_seqlen=meta.max_seqlen)[0][None]

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        packed = [t[0] for t in (q, k_global, v_global, k, v)]
        return self.loop_attention(*packed, gate_weight, gate_bias, window=window, cu_seqlens=meta.cu_seqlens,
                                   max_seqlen=meta.max_seqlen)[None]


class CachedAttention(AttentionBackend):
    """Incremental decoding: the new tokens' K/V are appended to the layer's caches and both branches run
    on attention_with_lse over the caches (loop 1: all positions; later loops: the last W)."""

    def causal(self, q, k, v, meta, layer):
        start = meta.cache.length
        return attention_with_lse(q, *meta.cache.layers[layer].append_global(k, v), q_start=start)[0]

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        cache, start = meta.cache.layers[layer], meta.cache.length
        out_global, _ = attention_with_lse(q, *cache.global_kv_all(), q_start=start)
        k_win, v_win = cache.append_window(loop, k, v)
        out_local, _ = attention_with_lse(q, k_win, v_win, q_start=start, k_start=start + q.shape[1] - k_win.shape[1],
                                          window=window)
        return gate_mix(q, out_global, out_local, gate_weight, gate_bias)


class LocalAttention(AttentionBackend):
    """The single-process backend: DenseAttention, PackedAttention or CachedAttention as the metadata says.
    `loop_attention_fn` runs the gated loop attention of dense and packed batches (fused or reference)."""

    def __init__(self, loop_attention_fn: Callable[..., torch.Tensor]) -> None:
        self.dense, self.packed = DenseAttention(loop_attention_fn), PackedAttention(loop_attention_fn)
        self.cached = CachedAttention()

    def _select(self, meta: AttentionMetadata) -> AttentionBackend:
        if meta.cache is not None:
            return self.cached
        return self.dense if meta.cu_seqlens is None else self.packed

    def causal(self, q, k, v, meta, layer):
        return self._select(meta).causal(q, k, v, meta, layer)

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        return self._select(meta).gated(q, k_global, v_global, k, v, gate_weight, gate_bias, window=window, loop=loop,
                                        meta=meta, layer=layer)
