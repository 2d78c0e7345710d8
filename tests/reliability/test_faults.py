"""Bit fields, bit flips, and the op-level fault mode: it counts the ops that compute values (the fused
loop-attention kernels and their backward among them, views not), and flips one bit in the k-th."""

import pytest
import torch

from iquest_core.ops import loop_attention
from iquest_core.reliability.faults import OpFaultMode, bit_field, computed_outputs, field_bits, flip_bit


@pytest.mark.parametrize("dtype,sign,exponent,high,low", [
    (torch.float32, [31], range(23, 31), range(12, 23), range(0, 12)),
    (torch.float64, [63], range(52, 63), range(26, 52), range(0, 26)),
    (torch.bfloat16, [15], range(7, 15), range(4, 7), range(0, 4)),
    (torch.float16, [15], range(10, 15), range(5, 10), range(0, 5)),
    (torch.float8_e4m3fn, [7], range(3, 7), range(2, 3), range(0, 2)),
    (torch.float8_e5m2, [7], range(2, 7), range(1, 2), range(0, 1)),
], ids=str)
def test_float_fields(dtype, sign, exponent, high, low):
    fields = field_bits(dtype)
    assert [list(fields[k]) for k in ("sign", "exponent", "high_mantissa", "low_mantissa")] == [
        sign, list(exponent), list(high), list(low)]
    assert sum(len(r) for r in fields.values()) == torch.finfo(dtype).bits
    assert bit_field(dtype, sign[0]) == "sign" and bit_field(dtype, 0) == "low_mantissa"


def test_integer_fields():
    assert field_bits(torch.int32) == {"integer": range(0, 32)}
    assert field_bits(torch.bool) == {"integer": range(0, 1)}
    with pytest.raises(ValueError, match="bit"):
        bit_field(torch.int8, 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int16, torch.uint8], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_flip_bit_flips_exactly_one_bit_of_the_indexed_element(dtype, layout):
    base = (torch.randn(5, 6) * 50).to(dtype)
    t = base.t() if layout == "transposed" else base
    original = t.clone()
    index, bit = torch.randint(t.numel(), ()).item(), torch.randint(t.element_size() * 8, ()).item()
    flip_bit(t, index, bit)

    def raw(x):  # row-major bytes of the logical elements
        return x.contiguous().reshape(-1).view(torch.uint8)

    diff = raw(t) ^ raw(original)
    assert diff.nonzero().flatten().tolist() == [index * t.element_size() + bit // 8]
    assert diff[index * t.element_size() + bit // 8].item() == 1 << (bit % 8)
    flip_bit(t, index, bit)
    assert torch.equal(raw(t), raw(original))


def test_sign_flip_negates_a_float():
    t = torch.tensor([1.5, -2.0])
    flip_bit(t, 1, 31)
    assert t.tolist() == [1.5, 2.0]


def test_flip_bit_checks():
    with pytest.raises(ValueError, match="index"):
        flip_bit(torch.zeros(3), 3, 0)
    with pytest.raises(ValueError, match="bit"):
        flip_bit(torch.zeros(3), 0, 32)
    with pytest.raises(ValueError, match="bit"):
        flip_bit(torch.zeros(3, dtype=torch.bool), 0, 1)


def test_computed_outputs_skip_views_and_take_mutated_arguments():
    x = torch.randn(4, 3)
    view = torch.ops.aten.view.default
    assert computed_outputs(view, (x, [12]), {}, x.view(12)) == []
    mm = torch.ops.aten.mm.default
    out = x @ x.t()
    assert computed_outputs(mm, (x, x.t()), {}, out) == [out]
    foreach = torch.ops.aten._foreach_add_.Scalar
    ys = [torch.zeros(2), torch.zeros(3)]
    assert computed_outputs(foreach, (ys, 1.0), {}, None) == ys
    empty = torch.ops.aten.empty.memory_format
    assert computed_outputs(empty, ([3],), {}, torch.empty(3)) == []


def loop_attention_step(inputs):
    out = loop_attention(*inputs, window=3)
    out.square().sum().backward()
    return torch.cat([t.grad.flatten() for t in inputs])


def fresh_inputs():
    torch.manual_seed(0)
    return [torch.randn(1, 9, 2, 8, requires_grad=True) for _ in range(5)] + [
        torch.randn(2, 8, requires_grad=True), torch.randn(2, requires_grad=True)]


def test_the_mode_sees_the_fused_kernels_and_flips_the_kth_op():
    counter = OpFaultMode()
    with counter:
        clean = loop_attention_step(fresh_inputs())
    assert counter.hit is None and counter.count > 2
    ops = []

    class Recorder(OpFaultMode):
        def _flip(self, op, outputs):
            ops.append(op)

    for k in range(counter.count):
        with Recorder(k):
            loop_attention_step(fresh_inputs())
    assert "iquest.loop_attention.default" in ops and "iquest.loop_attention_backward.default" in ops
    k = ops.index("iquest.loop_attention.default")
    mode = OpFaultMode(k, element=0.3, bit=0.99)  # the sign bit of an element of the op's outputs
    with mode:
        faulty = loop_attention_step(fresh_inputs())
    assert (mode.hit.op, mode.hit.bit, mode.hit.field) == ("iquest.loop_attention.default", 31, "sign")
    assert mode.count == counter.count and not torch.equal(faulty, clean)
