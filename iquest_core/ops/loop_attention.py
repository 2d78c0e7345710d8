"""`loop_attention`: LoopCoder's fused gated loop attention (global causal branch over loop-1 K/V,
sliding-window branch over loop-2 K/V, per-head sigmoid gate), forward and backward in one kernel
each. Registered as the custom op ``torch.ops.iquest.loop_attention`` with autograd and a fake
implementation, so it runs under autograd and torch.compile without graph breaks; its CUDA
implementation self-checks the kernel on first use (cuda_dispatch, cuda_selfcheck).
"""

from __future__ import annotations

import torch

import iquest_core.ops.cuda_selfcheck as cuda_selfcheck
from iquest_core.ops.cuda_dispatch import register_checked_cuda_kernel
from iquest_core.ops.input_checks import (
    check_cu_seqlens,
    check_dtype,
    check_same_device,
    check_shape,
    check_qkv,
    check_tensor,
    check_window,
    resolve_max_seqlen,
    resolve_scale,
)

_OP = torch.ops.iquest.loop_attention.default
_BACKWARD = torch.ops.iquest.loop_attention_backward.default
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def loop_attention(
    q: torch.Tensor,
    k_global: torch.Tensor,
    v_global: torch.Tensor,
    k_local: torch.Tensor,
    v_local: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    *,
    window: int = 64,
    scale: float | None = None,
    cu_seqlens: torch.Tensor | None = None,
    max_seqlen: int | None = None,
) -> torch.Tensor:
    """out = g * attn(q, k_global, v_global; causal) + (1 - g) * attn(q, k_local, v_local; causal, window).

    q: (B, L, H, D), or packed (T, H, D) with cu_seqlens (int32, (num_docs + 1,), offsets of the
    documents; no attention across documents). k_*/v_*: (B, L, Hkv, D) or (T, Hkv, D), same dtype as q
    (float32, bfloat16 or float16); GQA: query head h reads KV head h // (H / Hkv). The window branch
    sees the `window` keys ending at the query itself. Gate g[i, h] = sigmoid(q[i, h] . gate_weight[h]
    + gate_bias[h]) in float32; gate_weight (H, D), gate_bias (H,). scale defaults to D**-0.5.
    max_seqlen, if given, must be at least the longest document; on CUDA it sizes the launch (when None
    it is read from cu_seqlens, one host synchronisation). Returns q's shape and dtype.
    """
    _check_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, cu_seqlens, max_seqlen)
    out, *_ = _OP(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window,
                  resolve_scale(scale, q.shape[-1]), cu_seqlens, resolve_max_seqlen(cu_seqlens, max_seqlen))
    return out


def _check_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, cu_seqlens,
                  max_seqlen) -> None:
    packed = cu_seqlens is not None
    kvs = {"k_global": k_global, "v_global": v_global, "k_local": k_local, "v_local": v_local}
    check_qkv(q, kvs, packed=packed)
    if not packed and k_global.shape[1] != q.shape[1]:
        raise ValueError(f"k_global: expected the query length L={q.shape[1]} in dim 1, got {tuple(k_global.shape)}")
    heads, head_dim = q.shape[-2], q.shape[-1]
    check_tensor("gate_weight", gate_weight)
    check_tensor("gate_bias", gate_bias)
    check_dtype("gate_weight", gate_weight, _FLOAT_DTYPES)
    check_dtype("gate_bias", gate_bias, gate_weight.dtype)
    check_shape("gate_weight", gate_weight, (heads, head_dim), "(H, D)")
    check_shape("gate_bias", gate_bias, (heads,), "(H,)")
    check_window(window, optional=False)
    if packed:
        check_cu_seqlens(cu_seqlens, q, max_seqlen)
    elif max_seqlen is not None:
        raise ValueError("max_seqlen: only meaningful with cu_seqlens (packed layout), got it without")
    check_same_device({"q": q, "gate_weight": gate_weight, "gate_bias": gate_bias, "cu_seqlens": cu_seqlens})


@torch.library.register_fake("iquest::loop_attention")
def _loop_attention_fake(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale,
                         cu_seqlens, max_seqlen):
    _check_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, cu_seqlens, max_seqlen)
    resolve_scale(scale, q.shape[-1])
    branch = q.new_empty(q.shape, dtype=torch.float32)
    stats = q.new_empty(q.shape[:-1], dtype=torch.float32)
    return (torch.empty_like(q), branch, torch.empty_like(branch), stats, torch.empty_like(stats),
            torch.empty_like(stats))


@torch.library.register_fake("iquest::loop_attention_backward")
def _loop_attention_backward_fake(grad_out, q, k_global, v_global, k_local, v_local, gate_weight, gate_bias,
                                  out_global, out_local, lse_global, lse_local, gate, window, scale, cu_seqlens,
                                  max_seqlen):
    _check_inputs(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, cu_seqlens, max_seqlen)
    check_shape("grad_out", grad_out, tuple(q.shape), "like q")
    for name, t in (("out_global", out_global), ("out_local", out_local)):
        check_shape(name, t, tuple(q.shape), "like q")
    for name, t in (("lse_global", lse_global), ("lse_local", lse_local), ("gate", gate)):
        check_shape(name, t, tuple(q.shape[:-1]), "(B, L, H) or packed (T, H)")
    for name, t in (("out_global", out_global), ("out_local", out_local), ("lse_global", lse_global),
                    ("lse_local", lse_local), ("gate", gate)):
        check_dtype(name, t, torch.float32)
    check_same_device({"q": q, "grad_out": grad_out, "out_global": out_global, "out_local": out_local,
                       "lse_global": lse_global, "lse_local": lse_local, "gate": gate})
    resolve_scale(scale, q.shape[-1])
    return tuple(torch.empty_like(t) for t in (q, k_global, v_global, k_local, v_local, gate_weight, gate_bias))


def _setup_context(ctx, inputs, output):
    q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window, scale, cu_seqlens, max_seqlen = inputs
    _, out_global, out_local, lse_global, lse_local, gate = output
    ctx.save_for_backward(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, out_global, out_local,
                          lse_global, lse_local, gate, cu_seqlens)
    ctx.args = (window, scale)
    ctx.max_seqlen = max_seqlen


def _backward(ctx, grad_out, *unused_aux_grads):
    *tensors, cu_seqlens = ctx.saved_tensors
    grads = _BACKWARD(grad_out, *tensors, *ctx.args, cu_seqlens, ctx.max_seqlen)
    return (*grads, None, None, None, None)


torch.library.register_autograd("iquest::loop_attention", _backward, setup_context=_setup_context)


def _check(q: torch.Tensor) -> None:
    """On CUDA the first call per device, dtype and head_dim checks the kernel against float64 (cuda_selfcheck)."""
    cuda_selfcheck.check_once("loop_attention", q, loop_attention)


register_checked_cuda_kernel("loop_attention", lambda q, *_: _check(q))
register_checked_cuda_kernel("loop_attention_backward", lambda grad_out, q, *_: _check(q))
