"""`attention_with_lse`: causal (optionally windowed) attention over one block of keys, returning the
output and its log-sum-exp, so that blocks computed apart (context parallelism) merge exactly.

Registered as the custom op ``torch.ops.iquest.attention_with_lse`` (C++ kernels, autograd formula
and fake implementation below); the backward accepts a gradient for the lse as well.
"""

from __future__ import annotations

import torch

from iquest_core.ops.cuda_selfcheck import check_once as _cuda_selfcheck_once
from iquest_core.ops.input_checks import (
    check_cu_seqlens,
    check_dtype,
    check_qkv,
    check_same_device,
    check_shape,
    check_tensor,
    check_window,
    resolve_scale,
)

_OP = torch.ops.iquest.attention_with_lse.default
_BACKWARD = torch.ops.iquest.attention_with_lse_backward.default


def attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    q_start: int = 0,
    k_start: int = 0,
    window: int | None = None,
    scale: float | None = None,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of queries at positions q_start + i over keys at positions k_start + j.

    q: (B, Lq, H, D); k, v: (B, Lk, Hkv, D) with H % Hkv == 0 (query head h reads KV head h // (H / Hkv));
    float32, bfloat16 or float16, accumulated in float32. Key j is visible to query i iff
    k_start + j <= q_start + i and, with a window W, q_start + i - W < k_start + j.
    Returns out (B, Lq, H, D) in q's dtype (0 for a query that sees no key) and lse (B, H, Lq) float32,
    the natural log of the softmax denominator of the scaled scores (-inf where no key is visible).
    Packed documents: q (T, H, D), k, v (T, Hkv, D) with int32 cu_seqlens (num_docs + 1,); positions
    restart at q_start / k_start in every document, no attention crosses documents; lse is (H, T).
    """
    _check_block(q, k, v, q_start, k_start, window, cu_seqlens)
    return _OP(q, k, v, q_start, k_start, window or 0, resolve_scale(scale, q.shape[-1]), cu_seqlens)


def attention_with_lse_backward(
    grad_out: torch.Tensor,
    grad_lse: torch.Tensor | None,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    *,
    q_start: int = 0,
    k_start: int = 0,
    window: int | None = None,
    scale: float | None = None,
    cu_seqlens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv), in the dtypes of q, k, v, of `attention_with_lse` given d out (q's shape)
    and optionally d lse (lse's shape), from the saved out and lse of the same call (arguments as
    there). out may be the merge of several blocks' outputs with lse their merged log-sum-exp: the
    gradient of each block is then its share of the merged attention's (context parallelism)."""
    _check_block(q, k, v, q_start, k_start, window, cu_seqlens)
    lse_shape = (*q.shape[:-3], q.shape[-2], q.shape[-3])
    check_tensor("out", out)
    check_tensor("lse", lse)
    check_tensor("grad_out", grad_out)
    check_shape("out", out, tuple(q.shape), "like q")
    check_shape("grad_out", grad_out, tuple(q.shape), "like q")
    check_shape("lse", lse, lse_shape, "(B, H, Lq) or packed (H, T)")
    check_dtype("lse", lse, torch.float32)
    if grad_lse is not None:
        check_tensor("grad_lse", grad_lse)
        check_shape("grad_lse", grad_lse, lse_shape, "like lse")
    check_same_device({"q": q, "out": out, "lse": lse, "grad_out": grad_out, "grad_lse": grad_lse})
    return _BACKWARD(grad_out, grad_lse, q, k, v, out, lse, q_start, k_start, window or 0,
                     resolve_scale(scale, q.shape[-1]), cu_seqlens)


def _check_block(q, k, v, q_start, k_start, window, cu_seqlens) -> None:
    check_qkv(q, {"k": k, "v": v}, packed=cu_seqlens is not None)
    if cu_seqlens is not None:
        check_cu_seqlens(cu_seqlens, q, None)
        check_same_device({"q": q, "cu_seqlens": cu_seqlens})
    check_window(window, optional=True)
    for name, value in (("q_start", q_start), ("k_start", k_start)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
    if q.is_cuda:  # the first CUDA call per device, dtype and head_dim checks the kernel against float64
        _cuda_selfcheck_once("attention_with_lse", q)


@torch.library.register_fake("iquest::attention_with_lse")
def _attention_with_lse_fake(q, k, v, q_start, k_start, window, scale, cu_seqlens=None):
    lse_rows = q.new_empty(q.shape[:-1], dtype=torch.float32)  # (B, Lq, H) or (T, H)
    return torch.empty_like(q), lse_rows.transpose(-1, -2).contiguous()


@torch.library.register_fake("iquest::attention_with_lse_backward")
def _attention_with_lse_backward_fake(grad_out, grad_lse, q, k, v, out, lse, q_start, k_start, window, scale,
                                      cu_seqlens=None):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    q, k, v, q_start, k_start, window, scale, cu_seqlens = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens)
    ctx.args = (q_start, k_start, window, scale)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
    dq, dk, dv = _BACKWARD(grad_out, grad_lse, q, k, v, out, lse, *ctx.args, cu_seqlens)
    return dq, dk, dv, None, None, None, None, None


torch.library.register_autograd("iquest::attention_with_lse", _backward, setup_context=_setup_context)
