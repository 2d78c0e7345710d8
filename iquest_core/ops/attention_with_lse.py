"""`attention_with_lse`: causal (optionally windowed) attention over one block of keys, returning the
output and its log-sum-exp, so that blocks computed apart (context parallelism) merge exactly.

Registered as the custom op ``torch.ops.iquest.attention_with_lse`` (C++ kernels, autograd formula
and fake implementation below; the CUDA implementation self-checks the kernel on first use); the
backward accepts a gradient for the lse as well, and both can keep their results in float32
(`out_f32`, `grads_f32`) for a ring that merges partial blocks in float32.
"""

from __future__ import annotations

import torch

import iquest_core.ops.cuda_selfcheck as cuda_selfcheck
from iquest_core.ops.cuda_dispatch import register_checked_cuda_kernel
from iquest_core.ops.input_checks import (
    check_cu_seqlens,
    check_dtype,
    check_qkv,
    check_same_device,
    check_shape,
    check_tensor,
    check_window,
    resolve_max_seqlen,
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
    max_seqlen: int | None = None,
    out_f32: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of queries at positions q_start + i over keys at positions k_start + j.

    q: (B, Lq, H, D); k, v: (B, Lk, Hkv, D) with H % Hkv == 0 (query head h reads KV head h // (H / Hkv));
    float32, bfloat16 or float16, accumulated in float32. Key j is visible to query i iff
    k_start + j <= q_start + i and, with a window W, q_start + i - W < k_start + j.
    Returns out (B, Lq, H, D) in q's dtype, or float32 with out_f32 (0 for a query that sees no key),
    and lse (B, H, Lq) float32, the natural log of the softmax denominator of the scaled scores (-inf
    where no key is visible).
    Packed documents: q (T, H, D), k, v (T, Hkv, D) with int32 cu_seqlens (num_docs + 1,); positions
    restart at q_start / k_start in every document, no attention crosses documents; lse is (H, T).
    max_seqlen: the longest document; on CUDA it sizes the launch (when None it is read from cu_seqlens,
    one host synchronisation).
    """
    _check_block(q, k, v, q_start, k_start, window, cu_seqlens, max_seqlen)
    if not isinstance(out_f32, bool):
        raise ValueError(f"out_f32: expected a bool, got {out_f32!r}")
    return _OP(q, k, v, q_start, k_start, window or 0, resolve_scale(scale, q.shape[-1]), cu_seqlens,
               resolve_max_seqlen(cu_seqlens, max_seqlen), out_f32)


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
    max_seqlen: int | None = None,
    grads_f32: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of `attention_with_lse` given d out (q's shape) and optionally d lse (lse's
    shape), from the saved out and lse of the same call (arguments as there): in the dtypes of q, k, v,
    or all float32 with grads_f32. out may be the merge of several blocks' outputs with lse their merged
    log-sum-exp: the gradient of each block is then its share of the merged attention's (context
    parallelism)."""
    _check_block(q, k, v, q_start, k_start, window, cu_seqlens, max_seqlen)
    _check_saved(grad_out, grad_lse, q, out, lse)
    if not isinstance(grads_f32, bool):
        raise ValueError(f"grads_f32: expected a bool, got {grads_f32!r}")
    return _BACKWARD(grad_out, grad_lse, q, k, v, out, lse, q_start, k_start, window or 0,
                     resolve_scale(scale, q.shape[-1]), cu_seqlens, resolve_max_seqlen(cu_seqlens, max_seqlen),
                     grads_f32)


def _check_block(q, k, v, q_start, k_start, window, cu_seqlens, max_seqlen) -> None:
    check_qkv(q, {"k": k, "v": v}, packed=cu_seqlens is not None)
    if cu_seqlens is not None:
        check_cu_seqlens(cu_seqlens, q, max_seqlen)
        check_same_device({"q": q, "cu_seqlens": cu_seqlens})
    elif max_seqlen is not None:
        raise ValueError("max_seqlen: only meaningful with cu_seqlens (packed layout), got it without")
    check_window(window, optional=True)
    for name, value in (("q_start", q_start), ("k_start", k_start)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")


def _lse_shape(q: torch.Tensor) -> tuple[int, ...]:
    return (*q.shape[:-3], q.shape[-2], q.shape[-3])


def _check_saved(grad_out, grad_lse, q, out, lse) -> None:
    for name, t in (("grad_out", grad_out), ("out", out), ("lse", lse)):
        check_tensor(name, t)
    check_shape("out", out, tuple(q.shape), "like q")
    check_shape("grad_out", grad_out, tuple(q.shape), "like q")
    check_shape("lse", lse, _lse_shape(q), "(B, H, Lq) or packed (H, T)")
    check_dtype("lse", lse, torch.float32)
    if grad_lse is not None:
        check_tensor("grad_lse", grad_lse)
        check_shape("grad_lse", grad_lse, _lse_shape(q), "like lse")
    check_same_device({"q": q, "out": out, "lse": lse, "grad_out": grad_out, "grad_lse": grad_lse})


@torch.library.register_fake("iquest::attention_with_lse")
def _attention_with_lse_fake(q, k, v, q_start, k_start, window, scale, cu_seqlens=None, max_seqlen=None,
                             out_f32=False):
    _check_block(q, k, v, q_start, k_start, window or None, cu_seqlens, max_seqlen)
    resolve_scale(scale, q.shape[-1])
    lse_rows = q.new_empty(q.shape[:-1], dtype=torch.float32)  # (B, Lq, H) or (T, H)
    out = torch.empty_like(q, dtype=torch.float32 if out_f32 else q.dtype)
    return out, lse_rows.transpose(-1, -2).contiguous()


@torch.library.register_fake("iquest::attention_with_lse_backward")
def _attention_with_lse_backward_fake(grad_out, grad_lse, q, k, v, out, lse, q_start, k_start, window, scale,
                                      cu_seqlens=None, max_seqlen=None, grads_f32=False):
    _check_block(q, k, v, q_start, k_start, window or None, cu_seqlens, max_seqlen)
    resolve_scale(scale, q.shape[-1])
    _check_saved(grad_out, grad_lse, q, out, lse)
    return tuple(torch.empty_like(t, dtype=torch.float32 if grads_f32 else t.dtype) for t in (q, k, v))


def _setup_context(ctx, inputs, output):
    q, k, v, q_start, k_start, window, scale, cu_seqlens, max_seqlen, _ = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens)
    ctx.args = (q_start, k_start, window, scale)
    ctx.max_seqlen = max_seqlen


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
    dq, dk, dv = _BACKWARD(grad_out, grad_lse, q, k, v, out, lse, *ctx.args, cu_seqlens, ctx.max_seqlen, False)
    return dq, dk, dv, None, None, None, None, None, None, None


torch.library.register_autograd("iquest::attention_with_lse", _backward, setup_context=_setup_context)


def _check(q: torch.Tensor) -> None:
    """On CUDA the first call per device, dtype and head_dim checks the kernel against float64 (cuda_selfcheck)."""
    cuda_selfcheck.check_once("attention_with_lse", q, attention_with_lse)


register_checked_cuda_kernel("attention_with_lse", lambda q, *_: _check(q))
register_checked_cuda_kernel("attention_with_lse_backward", lambda grad_out, grad_lse, q, *_: _check(q))
