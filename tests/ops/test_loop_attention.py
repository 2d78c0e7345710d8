"""loop_attention against the float64 statement of its semantics (iquest_core.ops.reference)."""

import os
import subprocess
import sys

import pytest
import torch

from iquest_core.ops import loop_attention
from iquest_core.ops.reference import attention_with_lse_reference, loop_attention_reference
from tests.helpers import assert_rel_close, max_err, rel_err

NAMES = ("q", "k_global", "v_global", "k_local", "v_local", "gate_weight", "gate_bias")


def make_inputs(lead, heads, kv_heads, head_dim, *, dtype=torch.float64, device="cpu"):
    """Fresh random inputs; lead is (B, L) or (T,) for the packed layout."""
    q = torch.randn(*lead, heads, head_dim, dtype=dtype, device=device)
    kvs = [torch.randn(*lead, kv_heads, head_dim, dtype=dtype, device=device) for _ in range(4)]
    gate_weight = torch.randn(heads, head_dim, dtype=dtype, device=device) * head_dim**-0.5
    gate_bias = torch.randn(heads, dtype=dtype, device=device)
    return [q, *kvs, gate_weight, gate_bias]


def run(fn, inputs, grad_out, **kwargs):
    """Output and the gradients of all seven inputs of fn(*inputs) under grad_out."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves, **kwargs)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), [t.grad for t in leaves]


SHAPES = [
    # (B, L, H, Hkv, D, window)
    pytest.param(1, 1, 2, 2, 64, 64, id="one-token"),
    pytest.param(2, 37, 4, 2, 32, 64, id="L<window-gqa"),
    pytest.param(1, 300, 3, 1, 80, 64, id="odd-L-odd-heads-mqa"),
    pytest.param(2, 129, 4, 4, 128, 1, id="window-1"),
    pytest.param(1, 70, 2, 2, 16, 1000, id="window>L"),
    pytest.param(1, 600, 2, 1, 256, 64, id="D256-several-key-tiles"),
]


@pytest.mark.parametrize("batch,length,heads,kv_heads,head_dim,window", SHAPES)
def test_fp32_matches_float64_reference(device, batch, length, heads, kv_heads, head_dim, window):
    ref_inputs = make_inputs((batch, length), heads, kv_heads, head_dim, device=device)
    grad_out = torch.randn_like(ref_inputs[0])
    expected, expected_grads = run(loop_attention_reference, ref_inputs, grad_out, window=window)
    out, grads = run(loop_attention, [t.float() for t in ref_inputs], grad_out, window=window)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert rel_err(out, expected) <= 1e-5
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        assert grad.dtype == torch.float32 and grad.shape == expected_grad.shape, name
        assert_rel_close(grad, expected_grad, 1e-4, name)


def test_custom_scale(device):
    inputs = make_inputs((1, 90), 2, 1, 32, device=device)
    expected = loop_attention_reference(*inputs, window=16, scale=0.3)
    out = loop_attention(*[t.float() for t in inputs], window=16, scale=0.3)
    assert rel_err(out, expected) <= 1e-5
    assert rel_err(loop_attention(*[t.float() for t in inputs], window=16), expected) > 1e-3


def test_packed_documents_of_very_different_lengths(device):
    lengths = [1, 4, 300, 33, 2, 517]
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    inputs = make_inputs((sum(lengths),), 4, 2, 64, device=device)
    grad_out = torch.randn_like(inputs[0])
    expected, expected_grads = run(loop_attention_reference, inputs, grad_out, cu_seqlens=cu_seqlens)
    out, grads = run(loop_attention, [t.float() for t in inputs], grad_out, cu_seqlens=cu_seqlens,
                     max_seqlen=max(lengths))
    assert rel_err(out, expected) <= 1e-5
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        assert_rel_close(grad, expected_grad, 1e-4, name)


def test_packed_equals_documents_run_apart(device):
    lengths = [130, 7, 64]
    cu_seqlens = torch.tensor([0, 130, 137, 201], dtype=torch.int32, device=device)
    inputs = [t.float() for t in make_inputs((sum(lengths),), 2, 2, 32, device=device)]
    packed = loop_attention(*inputs, cu_seqlens=cu_seqlens)
    starts = cu_seqlens.tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        alone = loop_attention(*(t[None, a:b] for t in inputs[:5]), *inputs[5:])[0]
        assert torch.equal(packed[a:b], alone)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_error_at_most_twice_pytorch_composition(device, dtype):
    inputs = make_inputs((2, 333), 4, 2, 64, device=device)
    grad_out = torch.randn_like(inputs[0])
    expected, expected_grads = run(loop_attention_reference, inputs, grad_out)
    low = [t.to(dtype) for t in inputs]
    baseline, baseline_grads = run(loop_attention_reference, low, grad_out)
    out, grads = run(loop_attention, low, grad_out)
    assert out.dtype == dtype
    assert max_err(out, expected) <= 2 * max_err(baseline, expected)
    for name, grad, baseline_grad, expected_grad in zip(NAMES, grads, baseline_grads, expected_grads):
        assert grad.dtype == dtype, name
        assert max_err(grad, expected_grad) <= 2 * max_err(baseline_grad, expected_grad), name


def test_forward_and_backward_are_bitwise_deterministic(device):
    inputs = [t.float() for t in make_inputs((2, 700), 4, 1, 64, device=device)]
    grad_out = torch.randn_like(inputs[0])
    out_a, grads_a = run(loop_attention, inputs, grad_out)
    out_b, grads_b = run(loop_attention, inputs, grad_out)
    assert torch.equal(out_a, out_b)
    for name, a, b in zip(NAMES, grads_a, grads_b):
        assert torch.equal(a, b), name


def test_reference_agrees_with_explicit_score_statement(device):
    """The two plain statements of the semantics (SDPA composition, explicit scores) agree."""
    q, kg, vg, kl, vl, w, b = make_inputs((2, 150), 4, 2, 32, device=device)
    out_global, _ = attention_with_lse_reference(q, kg, vg)
    out_local, _ = attention_with_lse_reference(q, kl, vl, window=64)
    g = torch.sigmoid(torch.einsum("blhd,hd->blh", q, w) + b)[..., None]
    assert rel_err(loop_attention_reference(q, kg, vg, kl, vl, w, b), g * out_global + (1 - g) * out_local) < 1e-12


def test_opcheck(device):
    inputs = [t.float().requires_grad_() for t in make_inputs((2, 45), 4, 2, 16, device=device)]
    torch.library.opcheck(torch.ops.iquest.loop_attention.default, (*inputs, 8, 0.25, None, None))
    cu_seqlens = torch.tensor([0, 5, 40], dtype=torch.int32, device=device)
    packed = [t.float().requires_grad_() for t in make_inputs((40,), 2, 1, 16, device=device)]
    torch.library.opcheck(torch.ops.iquest.loop_attention.default, (*packed, 8, 0.25, cu_seqlens, 35))


def test_torch_compile_fullgraph_matches_eager(device):
    inputs = [t.float() for t in make_inputs((1, 96), 2, 1, 32, device=device)]
    grad_out = torch.randn_like(inputs[0])

    def block(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias):
        return loop_attention(q * 2.0, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window=16).relu()

    compiled = torch.compile(block, fullgraph=True)
    out, grads = run(compiled, inputs, grad_out)
    expected, expected_grads = run(block, inputs, grad_out)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        assert torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-6), name


_PEAK_MEMORY_SCRIPT = """
import resource, sys, torch
from iquest_core.ops import loop_attention
L = int(sys.argv[1])
inputs = [torch.randn(1, L, 1, 64) for _ in range(5)] + [torch.randn(1, 64), torch.randn(1)]
inputs = [t.requires_grad_() for t in inputs]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loop_attention(*inputs).sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_long_sequence_forward_backward_allocates_nothing_of_size_l_by_l():
    length = 16384
    env = dict(os.environ, OMP_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_SCRIPT, str(length)], capture_output=True, text=True,
                            check=True, env=env)
    peak_growth = int(result.stdout.strip())
    l_by_l_bytes = length * length * 4  # one float32 L x L matrix: 1 GiB
    assert peak_growth < l_by_l_bytes // 8, f"peak memory grew by {peak_growth / 2**20:.0f} MiB"
