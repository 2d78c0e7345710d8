"""Decode-time state of LoopCoder: two kinds of K/V cache per layer.

- loop 1 (ordinary causal attention) keeps the K/V of every position seen so far; loops >= 2 read it
  as their global branch;
- every loop >= 2 keeps the K/V of the last `window` positions only (its sliding-window branch),
  the current token included.

Each chunk of new tokens (the whole prompt at prefill, one token per decode step) is appended before
attention runs, and the window caches are trimmed after the append, so the tokens early in a prefill
chunk still see their full window and the cache afterwards holds exactly the last `window` K/V.
"""

from __future__ import annotations

import torch

KV = tuple[torch.Tensor, torch.Tensor]


def _append(old: KV | None, k: torch.Tensor, v: torch.Tensor) -> KV:
    if old is None:
        return k, v
    return torch.cat((old[0], k), dim=1), torch.cat((old[1], v), dim=1)


class _GrowingKV:
    """K/V of a growing number of positions in buffers whose capacity doubles when full, so that
    appending one token per decode step costs amortised O(1) copies instead of a full torch.cat."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> KV:
        needed = self.length + k.shape[1]
        if self.keys is None or needed > self.keys.shape[1]:
            capacity = max(needed, 2 * (0 if self.keys is None else self.keys.shape[1]))
            keys = k.new_empty((k.shape[0], capacity, *k.shape[2:]))
            values = v.new_empty((v.shape[0], capacity, *v.shape[2:]))
            if self.keys is not None:
                keys[:, :self.length] = self.keys[:, :self.length]
                values[:, :self.length] = self.values[:, :self.length]
            self.keys, self.values = keys, values
        self.keys[:, self.length:needed] = k
        self.values[:, self.length:needed] = v
        self.length = needed
        return self.all()

    def all(self) -> KV:
        if self.keys is None:
            raise RuntimeError("loop 1 of this layer has not run on the new tokens yet")
        return self.keys[:, :self.length], self.values[:, :self.length]


class LayerCache:
    """The caches of one layer. K/V tensors are (B, S, Hkv, D), post-RoPE."""

    def __init__(self, loop_num: int, window: int) -> None:
        self.window = window
        self.global_kv = _GrowingKV()
        self.window_kv: list[KV | None] = [None] * (loop_num - 1)

    def append_global(self, k: torch.Tensor, v: torch.Tensor) -> KV:
        """Append loop-1 K/V of the new tokens; returns the K/V of all positions."""
        return self.global_kv.append(k, v)

    def global_kv_all(self) -> KV:
        """Loop-1 K/V of all positions so far (the new tokens' included once loop 1 has run)."""
        return self.global_kv.all()

    def append_window(self, loop: int, k: torch.Tensor, v: torch.Tensor) -> KV:
        """Append loop `loop` (>= 1, 0-based) K/V of the new tokens. Returns the K/V the new tokens'
        window branch reads (old window + new tokens) and keeps only the last `window` of them."""
        keys, values = _append(self.window_kv[loop - 1], k, v)
        self.window_kv[loop - 1] = keys[:, -self.window:], values[:, -self.window:]
        return keys, values


class LoopCache:
    """Decode state of a whole model: one LayerCache per layer and the number of positions cached.

    The model appends into it during a forward pass with `cache=` and calls `advance` at the end.
    """

    def __init__(self, num_layers: int, loop_num: int, window: int) -> None:
        self.layers = [LayerCache(loop_num, window) for _ in range(num_layers)]
        self.length = 0

    def advance(self, num_tokens: int) -> None:
        self.length += num_tokens
