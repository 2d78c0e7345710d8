"""Bit fields and bit flips of the fault injector, and its argument checks."""

import pytest
import torch

from iquest_core.reliability.faults import Fault, FaultInjector, bit_field, field_bits, flip_bit
from iquest_core.reliability.guard import SDCGuard
from tests.reliability.models import small_model


@pytest.mark.parametrize("dtype,sign,exponent,mantissa", [
    (torch.float32, [31], range(23, 31), range(0, 23)),
    (torch.bfloat16, [15], range(7, 15), range(0, 7)),
    (torch.float16, [15], range(10, 15), range(0, 10)),
    (torch.float8_e4m3fn, [7], range(3, 7), range(0, 3)),
    (torch.float8_e5m2, [7], range(2, 7), range(0, 2)),
], ids=str)
def test_float_fields(dtype, sign, exponent, mantissa):
    fields = field_bits(dtype)
    assert (list(fields["sign"]), list(fields["exponent"]), list(fields["mantissa"])) == (
        sign, list(exponent), list(mantissa))
    assert bit_field(dtype, sign[0]) == "sign" and bit_field(dtype, mantissa[-1]) == "mantissa"


def test_integer_fields():
    assert field_bits(torch.int32) == {"sign": range(31, 32), "value": range(0, 31)}
    assert field_bits(torch.uint8) == {"value": range(0, 8)}
    with pytest.raises(ValueError, match="bit"):
        bit_field(torch.int8, 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int16, torch.uint8], ids=str)
def test_flip_bit_flips_exactly_one_bit(dtype):
    t = (torch.randn(10) * 50).to(dtype)
    original = t.clone()
    bits = t.element_size() * 8
    index, bit = torch.randint(10, ()).item(), torch.randint(bits, ()).item()
    flip_bit(t, index, bit)
    raw, raw0 = t.view(torch.uint8), original.view(torch.uint8)
    changed = (raw ^ raw0).nonzero().flatten().tolist()
    assert changed == [index * t.element_size() + bit // 8]
    assert (raw ^ raw0)[changed[0]].item() == 1 << (bit % 8)
    flip_bit(t, index, bit)
    assert torch.equal(t.view(torch.uint8), raw0)


def test_sign_flip_negates_a_float():
    t = torch.tensor([1.5, -2.0])
    flip_bit(t, 1, 31)
    assert t.tolist() == [1.5, 2.0]


def test_flip_bit_checks():
    with pytest.raises(ValueError, match="index"):
        flip_bit(torch.zeros(3), 3, 0)
    with pytest.raises(ValueError, match="bit"):
        flip_bit(torch.zeros(3), 0, 32)
    with pytest.raises(ValueError, match="contiguous"):
        flip_bit(torch.zeros(3, 3).t(), 0, 0)


@pytest.mark.parametrize("fault,match", [
    (Fault("weights", "0.weight", 0, 0, 0), "fault.target"),
    (Fault("param", "nope", 0, 0, 0), "fault.name"),
    (Fault("param", "0.weight", 0, 32, 0), "fault.bit"),
    (Fault("param", "0.weight", 128, 0, 0), "fault.index"),
    (Fault("grad", "0.weight", 0, 0, 0, run=3), "fault.run"),
    (Fault("activation", "9", 0, 0, 0), "fault.name"),
    (Fault("optimizer", "state.0.exp_avg", 0, 0, 0), "fault.target"),
])
def test_schedule_checks(fault, match):
    injector = FaultInjector(SDCGuard(small_model()))
    with pytest.raises(ValueError, match=match):
        injector.schedule(fault)
    assert not injector.pending


def test_remove_detaches_the_injector():
    guard = SDCGuard(small_model())
    injector = FaultInjector(guard)
    assert guard.hooks == [injector]
    injector.remove()
    assert guard.hooks == []
