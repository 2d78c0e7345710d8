"""Plain PyTorch statements of the attention ops' semantics.

`loop_attention_reference` is also the unfused baseline: two `scaled_dot_product_attention` calls (a
causal one over loop-1 K/V and a masked one over loop-2 K/V) plus the gate mix, which is how
inference engines run LoopCoder today. Called with float64 inputs these are the tests' ground truth.
`loop_attention_banded` is the best unfused composition a user could write: the same causal call, and the
window branch banded in O(L * W) instead of an L x L mask (what a sliding-window flash kernel computes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iquest_core.ops.gate import gate_mix


def visibility_mask(q_len: int, k_len: int, *, q_start: int = 0, k_start: int = 0, window: int | None = None,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(q_len, k_len) bool: key j visible to query i iff k_start+j <= q_start+i and, with a window W,
    q_start+i - W < k_start+j."""
    qp = q_start + torch.arange(q_len, device=device)[:, None]
    kp = k_start + torch.arange(k_len, device=device)[None, :]
    mask = kp <= qp
    if window is not None:
        mask &= qp - window < kp
    return mask


def _sdpa(q, k, v, *, mask=None, causal=False, scale=None):
    """SDPA over (B, L, H, D) tensors with GQA."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                         is_causal=causal, scale=scale, enable_gqa=True)
    return out.transpose(1, 2)


def _one_document_at_a_time(fn, q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, *, window, scale,
                            cu_seqlens):
    """fn over each document of packed (T, H, D) inputs, concatenated."""
    bounds = cu_seqlens.tolist()
    docs = [fn(*(t[None, a:b] for t in (q, k_global, v_global, k_local, v_local)), gate_weight, gate_bias,
               window=window, scale=scale)[0]
            for a, b in zip(bounds[:-1], bounds[1:])]
    return torch.cat(docs) if docs else torch.empty_like(q)


def loop_attention_reference(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, *, window=64,
                             scale=None, cu_seqlens=None):
    """Same contract as iquest_core.ops.loop_attention (packed documents are computed one by one)."""
    if cu_seqlens is not None:
        return _one_document_at_a_time(loop_attention_reference, q, k_global, v_global, k_local, v_local,
                                       gate_weight, gate_bias, window=window, scale=scale, cu_seqlens=cu_seqlens)
    length = q.shape[1]
    out_global = _sdpa(q, k_global, v_global, causal=True, scale=scale)
    out_local = _sdpa(q, k_local, v_local, mask=visibility_mask(length, length, window=window, device=q.device),
                      scale=scale)
    return gate_mix(q, out_global, out_local, gate_weight, gate_bias)


def window_attention_banded(q, k, v, *, window, scale=None):
    """Sliding-window attention of (B, L, H, D) inputs with GQA (key j visible to query i iff
    i - window < j <= i) in O(L * window): blocks of `window` queries, each one SDPA call over the
    2 * window - 1 keys that end with the block, under a band mask."""
    batch, length, heads, dim = q.shape
    blocks = -(-length // window)
    pad = blocks * window - length
    q = F.pad(q, (0, 0, 0, 0, 0, pad))
    k, v = (F.pad(t, (0, 0, 0, 0, window - 1, pad)) for t in (k, v))
    span = 2 * window - 1
    kb, vb = (t.unfold(1, span, window).permute(0, 1, 4, 2, 3) for t in (k, v))  # (B, blocks, span, Hkv, D)
    qb = q.view(batch, blocks, window, heads, dim)
    s = torch.arange(window, device=q.device)[:, None]
    t = torch.arange(span, device=q.device)[None, :]
    band = (t >= s) & (t <= s + window - 1)  # query s of a block sees its key slots s .. s + window - 1
    first = band & (t >= window - 1)  # block 0: the slots before the sequence are padding
    mask = torch.stack([first] + [band] * (blocks - 1))[None, :, None]  # (1, blocks, 1, window, span)
    out = F.scaled_dot_product_attention(qb.transpose(2, 3), kb.transpose(2, 3), vb.transpose(2, 3),
                                         attn_mask=mask, scale=scale, enable_gqa=True)
    return out.transpose(2, 3).reshape(batch, blocks * window, heads, dim)[:, :length]


def loop_attention_banded(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, *, window=64,
                          scale=None, cu_seqlens=None):
    """Same contract as iquest_core.ops.loop_attention: causal SDPA + window_attention_banded + gate mix."""
    if cu_seqlens is not None:
        return _one_document_at_a_time(loop_attention_banded, q, k_global, v_global, k_local, v_local,
                                       gate_weight, gate_bias, window=window, scale=scale, cu_seqlens=cu_seqlens)
    out_global = _sdpa(q, k_global, v_global, causal=True, scale=scale)
    out_local = window_attention_banded(q, k_local, v_local, window=window, scale=scale)
    return gate_mix(q, out_global, out_local, gate_weight, gate_bias)


def attention_with_lse_reference(q, k, v, *, q_start=0, k_start=0, window=None, scale=None):
    """Same contract as iquest_core.ops.attention_with_lse, with explicit scores: (out, lse (B, H, Lq))."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    groups = q.shape[2] // k.shape[2]
    k, v = k.repeat_interleave(groups, dim=2), v.repeat_interleave(groups, dim=2)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * scale
    mask = visibility_mask(q.shape[1], k.shape[1], q_start=q_start, k_start=k_start, window=window, device=q.device)
    scores = scores.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.exp(scores - torch.where(lse.isinf(), 0.0, lse)[..., None])  # rows that see no key: 0
    return torch.einsum("bhij,bjhd->bihd", probs, v), lse
