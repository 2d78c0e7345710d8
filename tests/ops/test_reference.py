"""loop_attention_banded (the banded unfused baseline) against loop_attention_reference (the L x L statement),
float64, forward and every gradient: lengths below, at and off multiples of the window, window 1, GQA, a
scale, packed documents."""

import pytest
import torch

from iquest_core.ops.reference import loop_attention_banded, loop_attention_reference


def run(fn, inputs, grad_out, **kwargs):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs, **kwargs)
    out.backward(grad_out)
    return out.detach(), [t.grad for t in inputs]


@pytest.mark.parametrize("length,window,heads,kv_heads,scale", [
    (1, 4, 2, 2, None), (3, 8, 2, 1, None), (16, 8, 4, 2, None), (37, 8, 4, 2, 0.3), (40, 1, 2, 2, None),
    (64, 64, 2, 1, None), (130, 64, 2, 2, None)])
def test_banded_equals_reference(length, window, heads, kv_heads, scale):
    torch.manual_seed(length * 100 + window)
    dim = 8
    inputs = [torch.randn(2, length, heads, dim, dtype=torch.float64)]
    inputs += [torch.randn(2, length, kv_heads, dim, dtype=torch.float64) for _ in range(4)]
    inputs += [torch.randn(heads, dim, dtype=torch.float64), torch.randn(heads, dtype=torch.float64)]
    grad_out = torch.randn(2, length, heads, dim, dtype=torch.float64)
    expected, expected_grads = run(loop_attention_reference, inputs, grad_out, window=window, scale=scale)
    got, got_grads = run(loop_attention_banded, inputs, grad_out, window=window, scale=scale)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    for name, g, e in zip(["q", "k_global", "v_global", "k_local", "v_local", "gate_weight", "gate_bias"],
                          got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10, msg=name)


def test_banded_packed_documents():
    torch.manual_seed(0)
    lengths, window, heads, dim = [19, 1, 7, 8], 8, 2, 8
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    inputs = [torch.randn(sum(lengths), heads, dim, dtype=torch.float64) for _ in range(5)]
    inputs += [torch.randn(heads, dim, dtype=torch.float64), torch.randn(heads, dtype=torch.float64)]
    expected = loop_attention_reference(*inputs, window=window, cu_seqlens=cu_seqlens)
    torch.testing.assert_close(loop_attention_banded(*inputs, window=window, cu_seqlens=cu_seqlens), expected,
                               rtol=1e-10, atol=1e-10)
    unpacked = loop_attention_banded(*(t[None] for t in inputs[:5]), *inputs[5:], window=window)[0]
    assert (unpacked - expected).abs().max() > 1e-3  # the documents do see each other without cu_seqlens
