"""The gate and the branch mix (iquest_core.ops.gate), the one Python statement used by the reference,
the ring path and cached decoding: against a float64 statement written here, and its hand-written
backward against autograd of that statement."""

import pytest
import torch

from iquest_core.ops.gate import gate, gate_mix
from tests.helpers import rel_err


def _plain_mix(q, out_global, out_local, w, b):
    g = torch.sigmoid((q * w).sum(-1) + b)[..., None]
    return g * out_global + (1 - g) * out_local


def _inputs(lead, heads, head_dim, dtype=torch.float64):
    q = torch.randn(*lead, heads, head_dim, dtype=dtype)
    out_global, out_local = torch.randn_like(q), torch.randn_like(q)
    return q, out_global, out_local, torch.randn(heads, head_dim, dtype=dtype), torch.randn(heads, dtype=dtype)


@pytest.mark.parametrize("lead", [(2, 7), (13,), (1, 1, 3)])
def test_forward_and_gradients_match_the_plain_statement(lead):
    inputs = _inputs(lead, 3, 5)
    leaves = [t.clone().requires_grad_() for t in inputs]
    plain_leaves = [t.clone().requires_grad_() for t in inputs]
    grad_out = torch.randn_like(inputs[0])
    out = gate_mix(*leaves)
    expected = _plain_mix(*plain_leaves)
    assert rel_err(out, expected) < 1e-14
    out.backward(grad_out)
    expected.backward(grad_out)
    for name, leaf, plain in zip(("q", "out_global", "out_local", "gate_weight", "gate_bias"), leaves, plain_leaves):
        assert rel_err(leaf.grad, plain.grad) < 1e-13, name


def test_gradcheck():
    inputs = [t.requires_grad_() for t in _inputs((2, 3), 2, 4)]
    assert torch.autograd.gradcheck(gate_mix, inputs)


def test_low_precision_inputs_compute_in_float32_and_return_q_dtype():
    q, og, ol, w, b = _inputs((4, 9), 2, 8, dtype=torch.bfloat16)
    assert gate(q, w, b).dtype == torch.float32
    out = gate_mix(q, og.float(), ol, w, b)
    assert out.dtype == torch.bfloat16
    expected = _plain_mix(*(t.double() for t in (q, og, ol, w, b)))
    assert rel_err(out, expected) < 2**-7
    leaves = [t.clone().requires_grad_() for t in (q, og.float(), ol, w, b)]
    gate_mix(*leaves).sum().backward()
    assert [leaf.grad.dtype for leaf in leaves] == [leaf.dtype for leaf in leaves]


def test_gate_is_sigmoid_of_the_logit_per_head():
    q, _, _, w, b = _inputs((6,), 4, 3)
    expected = 1 / (1 + torch.exp(-(torch.einsum("thd,hd->th", q, w) + b)))
    assert rel_err(gate(q, w, b), expected) < 1e-14
