"""LoopCoder's per-head gate and the mix of the two loop-attention branches, forward and backward, written
once for every Python path (the reference, the context-parallel ring, cached decoding):

    g[..., h] = sigmoid(q[..., h, :] . gate_weight[h] + gate_bias[h])
    out = g * out_global + (1 - g) * out_local

computed in float32 (float64 when any input is float64), q after RoPE. The fused kernels
(csrc/common/attention_math.h) implement the same formula in C++/CUDA.
"""

from __future__ import annotations

import torch


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def gate(q: torch.Tensor, gate_weight: torch.Tensor, gate_bias: torch.Tensor) -> torch.Tensor:
    """g (..., H) for q (..., H, D), gate_weight (H, D), gate_bias (H,), in float32 (float64 inputs: float64)."""
    dtype = _compute_dtype(q, gate_weight, gate_bias)
    logits = torch.einsum("...hd,hd->...h", q.to(dtype), gate_weight.to(dtype)) + gate_bias.to(dtype)
    return torch.sigmoid(logits)


class _GateMix(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, out_global, out_local, gate_weight, gate_bias):
        dtype = _compute_dtype(q, out_global, out_local, gate_weight, gate_bias)
        g = gate(q, gate_weight, gate_bias).to(dtype)[..., None]
        ctx.input_dtypes = [t.dtype for t in (q, out_global, out_local, gate_weight, gate_bias)]
        out_global, out_local = out_global.to(dtype), out_local.to(dtype)
        ctx.save_for_backward(q, out_global, out_local, gate_weight, g)
        return (g * out_global + (1 - g) * out_local).to(q.dtype)

    @staticmethod
    def backward(ctx, dout):
        q, out_global, out_local, gate_weight, g = ctx.saved_tensors
        dout = dout.to(g.dtype)
        dlogit = (dout * (out_global - out_local)).sum(-1) * (g * (1 - g))[..., 0]  # (..., H)
        grads = (dlogit[..., None] * gate_weight.to(g.dtype),  # q
                 g * dout,  # out_global
                 (1 - g) * dout,  # out_local
                 torch.einsum("...h,...hd->hd", dlogit, q.to(g.dtype)),  # gate_weight
                 dlogit.reshape(-1, dlogit.shape[-1]).sum(0))  # gate_bias
        return tuple(grad.to(dtype) for grad, dtype in zip(grads, ctx.input_dtypes))


def gate_mix(q: torch.Tensor, out_global: torch.Tensor, out_local: torch.Tensor, gate_weight: torch.Tensor,
             gate_bias: torch.Tensor) -> torch.Tensor:
    """g * out_global + (1 - g) * out_local with g = gate(q, gate_weight, gate_bias); q, out_* (..., H, D)
    of any float dtypes, computed in float32 (float64 inputs: float64), returned in q's dtype. Autograd
    through all five inputs, each gradient in its input's dtype; the gradients reaching out_global and
    out_local are g * dout and (1 - g) * dout in the compute dtype before that cast."""
    return _GateMix.apply(q, out_global, out_local, gate_weight, gate_bias)
