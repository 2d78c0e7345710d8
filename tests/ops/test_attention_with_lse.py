"""attention_with_lse: one block of causal/windowed attention with its log-sum-exp.

Device-generic tests run with the dtypes and head dims each device's kernels take (tests.helpers): float32
on the CPU within fixed relative errors of float64, bfloat16 / float16 (the CUDA kernels' only dtypes) within
twice the error of attention_with_lse_reference run in that dtype, for out, lse and all gradients.
"""

import pytest
import torch

from iquest_core.ops import attention_with_lse
from iquest_core.ops.attention_with_lse import attention_with_lse_backward
from iquest_core.ops.reference import attention_with_lse_reference, visibility_mask
from tests.helpers import (
    assert_rel_close,
    assert_within_twice_composition_error,
    device_dtype_params,
    rel_err,
    split_nonfinite,
    supported_dtypes,
    supported_head_dims,
)

DEVICE_DTYPES = dict(argnames="device,dtype", argvalues=device_dtype_params(), indirect=["device"])


def _inputs(lq, lk, heads, kv_heads, head_dim, *, dtype, device):
    """Fresh random q (2, Lq, H, D), k, v (2, Lk, Hkv, D) in dtype."""
    q = torch.randn(2, lq, heads, head_dim, device=device).to(dtype)
    k = torch.randn(2, lk, kv_heads, head_dim, device=device).to(dtype)
    return q, k, torch.randn_like(k)


def run(fn, inputs, grad_out, grad_lse, **kwargs):
    """(out, lse) and the gradients of q, k, v of the loss sum(out * grad_out) + sum(lse * grad_lse)."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out, lse = fn(*leaves, **kwargs)
    # A row that sees no key has lse -inf, so the loss may be nan; its gradients are still defined (the
    # kernel must ignore grad_lse there: no key, no gradient).
    loss = (out * grad_out.to(out.dtype)).sum() + (lse * grad_lse.to(lse.dtype)).sum()
    loss.backward()
    return out.detach(), lse.detach(), [t.grad for t in leaves]


def check_against_reference(device, dtype, lq, lk, heads, kv_heads, head_dim, **kwargs):
    """out, lse and dq, dk, dv on fresh inputs in dtype against the float64 reference of the same inputs:
    float32 within 1e-5 (out) / 1e-6 (lse) / 1e-4 (gradients) relative; bfloat16 / float16 within twice the
    error of the reference run in that dtype. Rows that see no key: out 0 and lse -inf exactly."""
    inputs = _inputs(lq, lk, heads, kv_heads, head_dim, dtype=dtype, device=device)
    grad_out = torch.randn_like(inputs[0])
    grad_lse = torch.randn(2, heads, lq, device=device)
    out64, lse64, grads64 = run(attention_with_lse_reference, [t.double() for t in inputs], grad_out.double(),
                                grad_lse.double(), **kwargs)
    out, lse, grads = run(attention_with_lse, inputs, grad_out, grad_lse, **kwargs)
    assert out.dtype == dtype and out.shape == out64.shape
    assert lse.shape == (2, heads, lq) and lse.dtype == torch.float32
    unseen = ~visibility_mask(lq, lk, device=device, **{k: v for k, v in kwargs.items() if k != "scale"}).any(-1)
    assert torch.equal(out[:, unseen], torch.zeros_like(out[:, unseen]))
    assert torch.isneginf(lse[..., unseen]).all() and torch.isfinite(lse[..., ~unseen]).all()
    for name, grad, grad64 in zip("qkv", grads, grads64):
        assert grad.dtype == dtype and grad.shape == grad64.shape, name
    if dtype == torch.float32:
        assert rel_err(out, out64) <= 1e-5
        lse_finite, lse64_finite = split_nonfinite(lse, lse64, "lse")
        assert lse_finite.numel() == 0 or rel_err(lse_finite, lse64_finite) <= 1e-6
        for name, grad, grad64 in zip("qkv", grads, grads64):
            assert_rel_close(grad, grad64, 1e-4, f"d{name}")
        return
    base_out, base_lse, base_grads = run(attention_with_lse_reference, inputs, grad_out, grad_lse, **kwargs)
    assert_within_twice_composition_error(out, base_out, out64, "out")
    assert_within_twice_composition_error(lse, base_lse, lse64, "lse")
    for name, grad, base_grad, grad64 in zip("qkv", grads, base_grads, grads64):
        assert_within_twice_composition_error(grad, base_grad, grad64, f"d{name}")


# Shapes every device's kernels take (head_dim 64 or 128).
CASES = [
    # (Lq, Lk, H, Hkv, D, kwargs)
    pytest.param(1, 1, 2, 2, 64, dict(), id="one-token"),
    pytest.param(300, 300, 4, 2, 64, dict(), id="causal-L300-gqa"),
    pytest.param(130, 200, 3, 1, 128, dict(q_start=200), id="queries-after-keys-mqa-odd-heads"),
    pytest.param(130, 130, 2, 2, 64, dict(q_start=500, k_start=400, window=200), id="window-offsets"),
    pytest.param(77, 600, 2, 1, 128, dict(q_start=590, k_start=20, window=300), id="long-keys-window"),
    pytest.param(129, 129, 4, 4, 64, dict(window=1), id="L129-window-1"),
    pytest.param(70, 100, 3, 3, 128, dict(k_start=30), id="first-rows-see-no-key"),
    pytest.param(100, 64, 2, 1, 64, dict(q_start=50, window=20), id="last-rows-past-the-window-see-no-key"),
    pytest.param(90, 90, 6, 3, 128, dict(window=33, scale=0.3), id="custom-scale"),
]


@pytest.mark.parametrize("lq,lk,heads,kv_heads,head_dim,kwargs", CASES)
@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_out_lse_and_gradients_match_float64(device, dtype, lq, lk, heads, kv_heads, head_dim, kwargs):
    assert head_dim in supported_head_dims(device)
    check_against_reference(device, dtype, lq, lk, heads, kv_heads, head_dim, **kwargs)


@pytest.mark.parametrize("lq,lk,heads,kv_heads,head_dim,kwargs", [
    pytest.param(1, 1, 2, 2, 32, dict(), id="D32-one-token"),
    pytest.param(130, 200, 3, 1, 48, dict(q_start=200), id="D48-queries-after-keys"),
    pytest.param(77, 300, 2, 1, 256, dict(q_start=290, k_start=20, window=100), id="D256-window-offsets"),
])
def test_cpu_float32_takes_any_head_dim_up_to_256(lq, lk, heads, kv_heads, head_dim, kwargs):
    check_against_reference("cpu", torch.float32, lq, lk, heads, kv_heads, head_dim, **kwargs)


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_queries_that_see_no_key_give_zero_minus_inf_and_zero_gradients(device, dtype):
    q, k, v = (t.requires_grad_() for t in _inputs(8, 16, 2, 2, 64, dtype=dtype, device=device))
    out, lse = attention_with_lse(q, k, v, q_start=0, k_start=4)  # queries 0..3 precede every key
    assert torch.equal(out[:, :4], torch.zeros_like(out[:, :4]))
    assert torch.isneginf(lse[..., :4]).all() and torch.isfinite(lse[..., 4:]).all()
    (out.float() * torch.randn_like(out.float())).sum().backward()
    assert torch.equal(q.grad[:, :4], torch.zeros_like(q.grad[:, :4]))
    assert q.grad[:, 4:].abs().sum() > 0 and k.grad.abs().sum() > 0 and v.grad.abs().sum() > 0
    # keys 4..15 sit at positions 8..19, after every query (positions 0..7): no gradient reaches them
    assert torch.equal(k.grad[:, 4:], torch.zeros_like(k.grad[:, 4:]))
    assert torch.equal(v.grad[:, 4:], torch.zeros_like(v.grad[:, 4:]))


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_blocks_merged_by_lse_equal_one_call(device, dtype):
    """Context parallelism's identity: attention over [K1; K2] = lse-weighted merge of the two blocks. Each
    output is within half a unit of its dtype's rounding of the exact value, so they differ by at most one
    unit (relative to the largest value), plus float32 noise."""
    q, k, v = _inputs(96, 192, 4, 2, 64, dtype=dtype, device=device)
    full, full_lse = attention_with_lse(q, k, v, q_start=96)
    out1, lse1 = attention_with_lse(q, k[:, :100], v[:, :100], q_start=96)
    out2, lse2 = attention_with_lse(q, k[:, 100:], v[:, 100:], q_start=96, k_start=100)
    lse = torch.logaddexp(lse1, lse2)
    w1 = torch.exp(lse1 - lse).transpose(1, 2)[..., None]
    w2 = torch.exp(lse2 - lse).transpose(1, 2)[..., None]
    assert rel_err(lse, full_lse) <= 1e-6
    tol = 1e-5 if dtype == torch.float32 else 1.01 * torch.finfo(dtype).eps
    assert rel_err(w1 * out1.float() + w2 * out2.float(), full) <= tol


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_forward_and_backward_are_bitwise_deterministic(device, dtype):
    inputs = _inputs(333, 400, 4, 1, 128, dtype=dtype, device=device)
    grad_out, grad_lse = torch.randn_like(inputs[0]), torch.randn(2, 4, 333, device=device)
    kwargs = dict(q_start=67, window=150)
    out_a, lse_a, grads_a = run(attention_with_lse, inputs, grad_out, grad_lse, **kwargs)
    out_b, lse_b, grads_b = run(attention_with_lse, inputs, grad_out, grad_lse, **kwargs)
    assert torch.equal(out_a, out_b) and torch.equal(lse_a, lse_b)
    for name, a, b in zip("qkv", grads_a, grads_b):
        assert torch.equal(a, b), name


def test_opcheck(device):
    dtype = supported_dtypes(device)[0]
    q, k, v = (t.requires_grad_() for t in _inputs(33, 40, 4, 2, 64, dtype=dtype, device=device))
    torch.library.opcheck(torch.ops.iquest.attention_with_lse.default, (q, k, v, 7, 0, 16, 0.25))


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_packed_documents_equal_each_document_alone(device, dtype):
    """q (T, H, D) with cu_seqlens: each document is attended alone (positions restart, nothing crosses);
    lse is (H, T); gradients flow per document."""
    head_dim = supported_head_dims(device)[0]
    lengths = [1, 37, 130, 5, 200]
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    total = sum(lengths)
    q = torch.randn(total, 4, head_dim, device=device).to(dtype)
    k, v = (torch.randn(total, 2, head_dim, device=device).to(dtype) for _ in range(2))
    grad_out, grad_lse = torch.randn_like(q), torch.randn(4, total, device=device)

    def packed(q, k, v):
        out, lse = attention_with_lse(q, k, v, window=64, cu_seqlens=cu_seqlens)
        assert lse.shape == (4, total)
        return out, lse

    def one_by_one(q, k, v):
        bounds = cu_seqlens.tolist()
        parts = [attention_with_lse(q[None, a:b], k[None, a:b], v[None, a:b], window=64)
                 for a, b in zip(bounds[:-1], bounds[1:])]
        return torch.cat([o[0] for o, _ in parts]), torch.cat([lse[0] for _, lse in parts], dim=-1)

    out, lse, grads = run(packed, [q, k, v], grad_out, grad_lse)
    out_ref, lse_ref, grads_ref = run(one_by_one, [q, k, v], grad_out, grad_lse)
    tol = dict(rtol=2 * torch.finfo(dtype).eps, atol=2 * torch.finfo(dtype).eps)  # same math, maybe other tiling
    torch.testing.assert_close(out, out_ref, **tol)
    torch.testing.assert_close(lse, lse_ref, rtol=1e-6, atol=1e-6)
    for name, grad, grad_ref in zip("qkv", grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref, **tol, msg=f"d{name}")


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_float32_partial_outputs_and_gradients(device, dtype):
    """out_f32 / grads_f32 (the ring's float32 merge): float32 results, equal to the default path's up to its
    final rounding to the input dtype, and no further from float64 than it."""
    head_dim = supported_head_dims(device)[-1] if device == "cuda" else 40
    q, k, v = _inputs(70, 90, 4, 2, head_dim, dtype=dtype, device=device)
    kwargs = dict(q_start=30, k_start=5, window=50)
    out, lse = attention_with_lse(q, k, v, **kwargs)
    out32, lse32 = attention_with_lse(q, k, v, out_f32=True, **kwargs)
    assert out32.dtype == torch.float32 and torch.equal(lse32, lse)
    assert torch.equal(out32.to(dtype), out)
    out64, _ = attention_with_lse_reference(*(t.double() for t in (q, k, v)), **kwargs)
    assert rel_err(out32, out64) <= rel_err(out, out64)

    grad_out = torch.randn_like(out32)
    grads = attention_with_lse_backward(grad_out.to(dtype), None, q, k, v, out, lse, **kwargs)
    grads32 = attention_with_lse_backward(grad_out.to(dtype), None, q, k, v, out32, lse, grads_f32=True, **kwargs)
    for name, g, g32, t in zip(("dq", "dk", "dv"), grads, grads32, (q, k, v)):
        assert g.dtype == t.dtype and g32.dtype == torch.float32, name
        assert rel_err(g32.to(dtype), g) <= (0 if dtype == torch.float32 else 2e-2), name
