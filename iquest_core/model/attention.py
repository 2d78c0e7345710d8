"""LoopCoder self-attention: one set of q/k/v/o projections used by every loop.

- loop 1: ordinary causal attention; its post-RoPE K/V are returned so that later loops can read them;
- loops >= 2: q, k, v from the current hidden state at the same positions; gated loop attention
  mixes the global branch (q over loop-1 K/V, causal) and the local branch (q over this loop's K/V,
  sliding window including itself) with g = sigmoid(q . w[h] + b[h]) per head, before o_proj.

The gated loop attention runs on the fused op (``attn_implementation="fused"``) or on the unfused
reference composition of two SDPA calls (``"reference"``, the baseline inference engines use).
With a `LayerCache` (generation), both branches run on `attention_with_lse` over the caches.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from iquest_core.model.cache import KV, LayerCache
from iquest_core.model.config import LoopCoderConfig
from iquest_core.model.rope import apply_rope
from iquest_core.ops import attention_with_lse, loop_attention
from iquest_core.ops.gate import gate_mix
from iquest_core.ops.reference import loop_attention_reference
from iquest_core.parallel import ring_attention, ring_loop_attention


def _unfused_loop_attention(*args, max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
    """loop_attention_reference behind loop_attention's signature (max_seqlen is only a hint)."""
    return loop_attention_reference(*args, **kwargs)


LOOP_ATTENTION = {"fused": loop_attention, "reference": _unfused_loop_attention}


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """Causal GQA attention of q (B, L, H, D) over k, v (B, L, Hkv, D): one SDPA call, or with cu_seqlens
    (B = 1, packed documents) the attention_with_lse kernel, which never attends across documents and
    builds no (T, T) mask."""
    if cu_seqlens is not None:
        return attention_with_lse(q[0], k[0], v[0], cu_seqlens=cu_seqlens)[0][None]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                         enable_gqa=True)
    return out.transpose(1, 2)


class LoopCoderAttention(nn.Module):
    """Projections q_proj (H*D, C), k_proj / v_proj (Hkv*D, C), o_proj (C, H*D), no biases."""

    def __init__(self, config: LoopCoderConfig, attn_implementation: str = "fused") -> None:
        super().__init__()
        if attn_implementation not in LOOP_ATTENTION:
            raise ValueError(f"attn_implementation: expected one of {sorted(LOOP_ATTENTION)}, "
                             f"got {attn_implementation!r}")
        self.heads, self.kv_heads, self.head_dim = (config.num_attention_heads, config.num_key_value_heads,
                                                    config.head_dim)
        self.window = config.loop_window_size
        self.loop_attention = LOOP_ATTENTION[attn_implementation]
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, loop: int,
                kv_global: KV | None = None, gate: nn.Linear | None = None,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None,
                cache: LayerCache | None = None, start: int = 0,
                cp_group: dist.ProcessGroup | None = None) -> tuple[torch.Tensor, KV | None]:
        """x (B, L, C); cos, sin (B, L, D). Returns (output (B, L, C), loop-1 K/V or None).

        loop is 0-based: loop 0 (the first loop) returns its K/V (B, L, Hkv, D); loops >= 1 need
        kv_global (those K/V) and gate, the layer's gate projection (weight (H, D), bias (H,)).
        cu_seqlens (B = 1): packed documents.
        With `cache`, the new tokens sit at positions start .. start + L - 1 and the caches supply the
        earlier K/V instead of kv_global.
        With `cp_group`, x is this rank's zigzag shard of the sequence and attention runs as a ring over
        the context-parallel group (iquest_core.parallel).
        """
        batch, length, _ = x.shape
        q = apply_rope(self.q_proj(x).view(batch, length, self.heads, self.head_dim), cos, sin)
        k = apply_rope(self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim), cos, sin)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim)
        kept = None
        if cache is not None:
            out = self._cached(q, k, v, loop, gate, cache, start)
        elif cp_group is not None:
            if loop == 0:
                out, kept = ring_attention(q, k, v, group=cp_group), (k, v)
            else:
                out = ring_loop_attention(q, *kv_global, k, v, gate.weight, gate.bias, group=cp_group,
                                          window=self.window)
        elif loop == 0:
            out, kept = causal_attention(q, k, v, cu_seqlens), (k, v)
        elif cu_seqlens is None:
            out = self.loop_attention(q, *kv_global, k, v, gate.weight, gate.bias, window=self.window)
        else:
            packed = [t[0] for t in (q, *kv_global, k, v)]
            out = self.loop_attention(*packed, gate.weight, gate.bias, window=self.window, cu_seqlens=cu_seqlens,
                                      max_seqlen=max_seqlen)[None]
        return self.o_proj(out.reshape(batch, length, -1)), kept

    def _cached(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, loop: int, gate: nn.Linear | None,
                cache: LayerCache, start: int) -> torch.Tensor:
        if loop == 0:
            out, _ = attention_with_lse(q, *cache.append_global(k, v), q_start=start)
            return out
        out_global, _ = attention_with_lse(q, *cache.global_kv_all(), q_start=start)
        k_win, v_win = cache.append_window(loop, k, v)
        out_local, _ = attention_with_lse(q, k_win, v_win, q_start=start,
                                          k_start=start + q.shape[1] - k_win.shape[1], window=self.window)
        return gate_mix(q, out_global, out_local, gate.weight, gate.bias)
