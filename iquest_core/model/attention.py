"""LoopCoder self-attention: one set of q/k/v/o projections used by every loop.

- loop 1: ordinary causal attention; its post-RoPE K/V are returned so that later loops can read them;
- loops >= 2: q, k, v from the current hidden state at the same positions; gated loop attention
  mixes the global branch (q over loop-1 K/V, causal) and the local branch (q over this loop's K/V,
  sliding window including itself) with g = sigmoid(q . w[h] + b[h]) per head, before o_proj.

The attention itself runs on the layer's backend (iquest_core.model.backends): by default
`LocalAttention`, whose gated loop attention is the fused op (``attn_implementation="fused"``), the
unfused reference composition of two SDPA calls (``"reference"``, the baseline inference engines use), or
the same with the window branch banded in O(L * W) (``"banded"``, the best unfused composition).
"""

from __future__ import annotations

import torch
from torch import nn

from iquest_core.model.backends import LOOP_ATTENTION, AttentionBackend, AttentionMetadata, LocalAttention
from iquest_core.model.cache import KV
from iquest_core.model.config import LoopCoderConfig
from iquest_core.model.rope import apply_rope


class LoopCoderAttention(nn.Module):
    """Projections q_proj (H*D, C), k_proj / v_proj (Hkv*D, C), o_proj (C, H*D), no biases. `backend`
    (an AttentionBackend) may be replaced from outside (context parallelism's apply_cp installs the ring backend)."""

    def __init__(self, config: LoopCoderConfig, layer: int, attn_implementation: str = "fused") -> None:
        super().__init__()
        if attn_implementation not in LOOP_ATTENTION:
            raise ValueError(f"attn_implementation: expected one of {sorted(LOOP_ATTENTION)}, "
                             f"got {attn_implementation!r}")
        self.layer = layer
        self.heads, self.kv_heads, self.head_dim = (config.num_attention_heads, config.num_key_value_heads,
                                                    config.head_dim)
        self.window = config.loop_window_size
        self.backend: AttentionBackend = LocalAttention(LOOP_ATTENTION[attn_implementation])
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, loop: int, meta: AttentionMetadata,
                kv_global: KV | None = None, gate: nn.Linear | None = None) -> tuple[torch.Tensor, KV | None]:
        """x (B, L, C); cos, sin (B, L, D). Returns (output (B, L, C), loop-1 K/V or None).

        loop is 0-based: loop 0 (the first loop) returns its K/V (B, L, Hkv, D); loops >= 1 need
        kv_global (those K/V) and gate, the layer's gate projection (weight (H, D), bias (H,)).
        """
        batch, length, _ = x.shape
        q = apply_rope(self.q_proj(x).view(batch, length, self.heads, self.head_dim), cos, sin)
        k = apply_rope(self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim), cos, sin)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim)
        if loop == 0:
            out, kept = self.backend.causal(q, k, v, meta, self.layer), (k, v)
        else:
            out, kept = self.backend.gated(q, *kv_global, k, v, gate.weight, gate.bias, window=self.window, loop=loop,
                                           meta=meta, layer=self.layer), None
        return self.o_proj(out.reshape(batch, length, -1)), kept
