"""Rotary position embedding (RoPE) with base rope_theta, in the rotate-half layout of Llama / Hugging Face.

No buffers: the inverse frequencies are recomputed from (head_dim, theta) on each call, which is cheap
(head_dim / 2 values) and keeps checkpoints free of derived tensors.
"""

from __future__ import annotations

import torch


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (*position_ids.shape, head_dim) in `dtype`, computed in float32.

    position_ids: integer tensor, e.g. (B, L) or packed (1, T) with positions restarting per document.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=position_ids.device).float() / head_dim
    inv_freq = 1.0 / (theta ** exponents)
    angles = position_ids.float()[..., None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, L, heads, D) by cos/sin (B, L, D) (broadcast over heads)."""
    cos, sin = cos[..., None, :], sin[..., None, :]
    return x * cos + _rotate_half(x) * sin
