"""loop_attention against the float64 statement of its semantics (iquest_core.ops.reference).

Device-generic tests run on every device of tests.helpers.DEVICES with the dtypes and head dims its kernels
take (tests.helpers.supported_dtypes / supported_head_dims): float32 on the CPU is held to 1e-5 (output) /
1e-4 (gradients) relative error against float64; bfloat16 / float16 (the only dtypes of the CUDA kernels)
to FlashAttention's rule, at most twice the error of the plain PyTorch composition run in that dtype.
Tests of CPU-only abilities (float32 at any head_dim <= 256, peak host memory) take no device.
"""

import os
import subprocess
import sys

import pytest
import torch

from iquest_core.ops import loop_attention
from iquest_core.ops.reference import attention_with_lse_reference, loop_attention_reference
from tests.helpers import (
    CUDA_HEAD_DIMS,
    assert_rel_close,
    assert_within_twice_composition_error,
    device_dtype_params,
    rel_err,
    supported_dtypes,
    supported_head_dims,
)

NAMES = ("q", "k_global", "v_global", "k_local", "v_local", "gate_weight", "gate_bias")
DEVICE_DTYPES = dict(argnames="device,dtype", argvalues=device_dtype_params(), indirect=["device"])


def make_inputs(lead, heads, kv_heads, head_dim, *, dtype, device):
    """Fresh random inputs in dtype; lead is (B, L) or (T,) for the packed layout."""
    q = torch.randn(*lead, heads, head_dim, device=device)
    kvs = [torch.randn(*lead, kv_heads, head_dim, device=device) for _ in range(4)]
    gate_weight = torch.randn(heads, head_dim, device=device) * head_dim**-0.5
    gate_bias = torch.randn(heads, device=device)
    return [t.to(dtype) for t in (q, *kvs, gate_weight, gate_bias)]


def run(fn, inputs, grad_out, **kwargs):
    """Output and the gradients of all seven inputs of fn(*inputs) under grad_out."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves, **kwargs)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), [t.grad for t in leaves]


def check_against_reference(device, dtype, lead, heads, kv_heads, head_dim, **kwargs):
    """loop_attention forward and backward on fresh inputs in dtype against the float64 reference of the same
    (rounded) inputs: float32 within 1e-5 / 1e-4 relative; bfloat16 / float16 within twice the error of
    loop_attention_reference run in that dtype (output and all seven gradients)."""
    inputs = make_inputs(lead, heads, kv_heads, head_dim, dtype=dtype, device=device)
    grad_out = torch.randn_like(inputs[0])
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "max_seqlen"}
    expected, expected_grads = run(loop_attention_reference, [t.double() for t in inputs], grad_out.double(),
                                   **ref_kwargs)
    out, grads = run(loop_attention, inputs, grad_out, **kwargs)
    assert out.dtype == dtype and out.shape == expected.shape and out.device == inputs[0].device
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        assert grad.dtype == dtype and grad.shape == expected_grad.shape, name
    if dtype == torch.float32:
        assert rel_err(out, expected) <= 1e-5
        for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
            assert_rel_close(grad, expected_grad, 1e-4, name)
        return
    baseline, baseline_grads = run(loop_attention_reference, inputs, grad_out, **ref_kwargs)
    assert_within_twice_composition_error(out, baseline, expected, "out")
    for name, grad, baseline_grad, expected_grad in zip(NAMES, grads, baseline_grads, expected_grads):
        assert_within_twice_composition_error(grad, baseline_grad, expected_grad, f"d{name}")


def cu_seqlens_of(lengths, device):
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)


# Shapes every device's kernels take (head_dim 64 or 128). Tiles are 64 keys x 16 query rows (64 per CTA).
SHAPES = [
    # (B, L, H, Hkv, D, kwargs)
    pytest.param(1, 1, 2, 2, 64, dict(window=64), id="one-token"),
    pytest.param(2, 37, 4, 2, 128, dict(window=64), id="L<window-gqa-batch2"),
    pytest.param(1, 300, 3, 1, 64, dict(window=64), id="L300-odd-heads-mqa"),
    pytest.param(2, 129, 4, 4, 128, dict(window=1), id="L129-window-1"),
    pytest.param(1, 70, 2, 2, 64, dict(window=1000), id="window>L"),
    pytest.param(1, 600, 2, 1, 128, dict(window=100), id="L600-several-key-tiles-window-across-tiles"),
    pytest.param(2, 90, 6, 2, 64, dict(window=16, scale=0.3), id="custom-scale"),
]


@pytest.mark.parametrize("batch,length,heads,kv_heads,head_dim,kwargs", SHAPES)
@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_matches_float64_reference(device, dtype, batch, length, heads, kv_heads, head_dim, kwargs):
    assert head_dim in supported_head_dims(device)
    check_against_reference(device, dtype, (batch, length), heads, kv_heads, head_dim, **kwargs)


@pytest.mark.parametrize("batch,length,heads,kv_heads,head_dim,window", [
    pytest.param(2, 37, 4, 2, 32, 64, id="D32-gqa"),
    pytest.param(1, 300, 3, 1, 80, 64, id="D80-odd-L-odd-heads-mqa"),
    pytest.param(1, 70, 2, 2, 16, 1000, id="D16-window>L"),
    pytest.param(1, 129, 2, 1, 48, 1, id="D48-window-1"),
    pytest.param(1, 600, 2, 1, 256, 64, id="D256-several-key-tiles"),
])
def test_cpu_float32_takes_any_head_dim_up_to_256(batch, length, heads, kv_heads, head_dim, window):
    """The CPU kernels take head dims the CUDA ones do not (those raise ValueError there, see test_input_checks)."""
    check_against_reference("cpu", torch.float32, (batch, length), heads, kv_heads, head_dim, window=window)


PACKED = [
    # (document lengths, H, Hkv, D, window)
    pytest.param([1, 4, 300, 33, 2, 517], 4, 2, 64, 64, id="6-docs-D64-gqa"),
    pytest.param([129, 1, 64, 70], 3, 1, 128, 16, id="4-docs-D128-mqa-odd-heads"),
]


@pytest.mark.parametrize("lengths,heads,kv_heads,head_dim,window", PACKED)
@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_packed_documents_of_very_different_lengths(device, dtype, lengths, heads, kv_heads, head_dim, window):
    check_against_reference(device, dtype, (sum(lengths),), heads, kv_heads, head_dim, window=window,
                            cu_seqlens=cu_seqlens_of(lengths, device), max_seqlen=max(lengths))


@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_packed_equals_documents_run_apart(device, dtype):
    lengths = [130, 7, 64]
    cu_seqlens = cu_seqlens_of(lengths, device)
    inputs = make_inputs((sum(lengths),), 2, 2, 64, dtype=dtype, device=device)
    packed = loop_attention(*inputs, cu_seqlens=cu_seqlens)
    starts = cu_seqlens.tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        alone = loop_attention(*(t[None, a:b] for t in inputs[:5]), *inputs[5:])[0]
        assert torch.equal(packed[a:b], alone)


def test_scale_argument_is_used(device):
    dtype = supported_dtypes(device)[0]
    inputs = make_inputs((1, 90), 2, 1, 64, dtype=dtype, device=device)
    default = loop_attention(*inputs, window=16)
    assert torch.equal(default, loop_attention(*inputs, window=16, scale=64**-0.5))
    assert rel_err(loop_attention(*inputs, window=16, scale=0.3), default) > 1e-2


@pytest.mark.parametrize("head_dim", CUDA_HEAD_DIMS)
@pytest.mark.parametrize(**DEVICE_DTYPES)
def test_forward_and_backward_are_bitwise_deterministic(device, dtype, head_dim):
    inputs = make_inputs((2, 400), 4, 1, head_dim, dtype=dtype, device=device)
    grad_out = torch.randn_like(inputs[0])
    out_a, grads_a = run(loop_attention, inputs, grad_out)
    out_b, grads_b = run(loop_attention, inputs, grad_out)
    assert torch.equal(out_a, out_b)
    for name, a, b in zip(NAMES, grads_a, grads_b):
        assert torch.equal(a, b), name


def test_reference_agrees_with_explicit_score_statement(device):
    """The two plain statements of the semantics (SDPA composition, explicit scores) agree (float64, no kernel)."""
    q, kg, vg, kl, vl, w, b = make_inputs((2, 150), 4, 2, 32, dtype=torch.float64, device=device)
    out_global, _ = attention_with_lse_reference(q, kg, vg)
    out_local, _ = attention_with_lse_reference(q, kl, vl, window=64)
    g = torch.sigmoid(torch.einsum("blhd,hd->blh", q, w) + b)[..., None]
    assert rel_err(loop_attention_reference(q, kg, vg, kl, vl, w, b), g * out_global + (1 - g) * out_local) < 1e-12


def test_opcheck(device):
    dtype = supported_dtypes(device)[0]
    inputs = [t.requires_grad_() for t in make_inputs((2, 45), 4, 2, 64, dtype=dtype, device=device)]
    torch.library.opcheck(torch.ops.iquest.loop_attention.default, (*inputs, 8, 0.25, None, None))
    cu_seqlens = torch.tensor([0, 5, 40], dtype=torch.int32, device=device)
    packed = [t.requires_grad_() for t in make_inputs((40,), 2, 1, 64, dtype=dtype, device=device)]
    torch.library.opcheck(torch.ops.iquest.loop_attention.default, (*packed, 8, 0.25, cu_seqlens, 35))


def test_torch_compile_fullgraph_matches_eager(device):
    dtype = supported_dtypes(device)[0]
    inputs = make_inputs((1, 96), 2, 1, 64, dtype=dtype, device=device)
    grad_out = torch.randn_like(inputs[0])

    def block(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias):
        return loop_attention(q * 2.0, k_global, v_global, k_local, v_local, gate_weight, gate_bias, window=16).relu()

    compiled = torch.compile(block, fullgraph=True)
    out, grads = run(compiled, inputs, grad_out)
    expected, expected_grads = run(block, inputs, grad_out)
    torch.testing.assert_close(out, expected)
    for name, grad, expected_grad in zip(NAMES, grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, msg=name)


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
