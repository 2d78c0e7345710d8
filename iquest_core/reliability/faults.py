"""Single-bit faults where hardware makes them.

`flip_bit` flips one bit of one element of any strided tensor. `OpFaultMode` is a TorchDispatchMode
that counts the operations a piece of code runs (every ATen or custom op that computes values, the
fused loop-attention kernels and their backward included; views and allocations of uninitialised
memory compute nothing and are not counted) and flips one bit in the output of the k-th of them, the
way a defective arithmetic unit returns a wrong result. `bit_field` names the field a bit belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

FLOAT_FIELDS = ("sign", "exponent", "high_mantissa", "low_mantissa")
FIELDS = (*FLOAT_FIELDS, "integer")
_BITS_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_UNINITIALISED = ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided")


def bit_width(dtype: torch.dtype) -> int:
    """Bits of one element that a flip may hit (1 for bool: other patterns are not booleans)."""
    return 1 if dtype == torch.bool else torch.empty(0, dtype=dtype).element_size() * 8


def field_bits(dtype: torch.dtype) -> dict[str, range]:
    """Bit positions (0 = least significant) of each field of an element. Floating dtypes: sign,
    exponent, high mantissa (the upper half of the mantissa bits, rounded down) and low mantissa;
    integers and bool: one field, "integer"."""
    bits = bit_width(dtype)
    if not dtype.is_floating_point:
        return {"integer": range(bits)}
    mantissa = round(-np.log2(torch.finfo(dtype).eps))
    sign = 1 if torch.finfo(dtype).min < 0 else 0
    low = mantissa - mantissa // 2
    return {"sign": range(bits - sign, bits), "exponent": range(mantissa, bits - sign),
            "high_mantissa": range(low, mantissa), "low_mantissa": range(0, low)}


def bit_field(dtype: torch.dtype, bit: int) -> str:
    """The field of `field_bits(dtype)` that holds `bit`."""
    for name, bits in field_bits(dtype).items():
        if bit in bits:
            return name
    raise ValueError(f"bit: expected 0 <= bit < {bit_width(dtype)}, got {bit}")


def flip_bit(t: torch.Tensor, index: int, bit: int) -> None:
    """Flips bit `bit` of element `index` (row-major over t's logical shape, whatever its strides) of
    t in place, bypassing autograd."""
    if not 0 <= index < t.numel():
        raise ValueError(f"index: expected 0 <= index < {t.numel()}, got {index}")
    if not 0 <= bit < bit_width(t.dtype):
        raise ValueError(f"bit: expected 0 <= bit < {bit_width(t.dtype)} for {t.dtype}, got {bit}")
    bits = t.element_size() * 8
    mask = 1 << bit
    if mask >= 2 ** (bits - 1) and bits > 8:
        mask -= 2**bits  # the signed view's bit pattern
    element = t.detach()[np.unravel_index(index, t.shape)] if t.dim() else t.detach()
    raw = element.view(_BITS_VIEW[t.element_size()])
    raw ^= mask


@dataclass
class Hit:
    """Where an OpFaultMode flip landed: the op, the output's dtype, the bit and its field."""

    op: str
    dtype: torch.dtype
    bit: int
    field: str


def computed_outputs(func, args, kwargs, out) -> list[torch.Tensor]:
    """The tensors an op call wrote values into: the arguments it mutates (in-place and out= ops, foreach
    ops included), else its outputs that are not views of its inputs; nothing for views and for
    allocations of uninitialised memory."""
    if func.is_view or func.overloadpacket.__name__ in _UNINITIALISED:
        return []
    schema = func._schema
    written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    if written:
        values = [kwargs[a.name] if a.name in kwargs else args[i] if i < len(args) else None
                  for i, a in enumerate(schema.arguments) if a in written]
        return [t for t in _tensors(values) if t.numel()]
    inputs = {t.untyped_storage().data_ptr() for t in _tensors([args, list(kwargs.values())]) if t.numel()}
    return [t for t in _tensors(out) if t.numel() and t.untyped_storage().data_ptr() not in inputs]


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs (tensors, and lists/tuples of them)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


class OpFaultMode(TorchDispatchMode):
    """Counts the value-computing ops run under it (`count`); with `target` = k, flips one bit in the
    output of op k (0-based): the element at fraction `element` of the op's computed output elements
    (all outputs, in order), the bit at fraction `bit` of that element's width. `hit` says where the
    flip landed (None until it has)."""

    def __init__(self, target: int | None = None, element: float = 0.0, bit: float = 0.0):
        super().__init__()
        self.target, self.element, self.bit = target, element, bit
        self.count = 0
        self.hit: Hit | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = computed_outputs(func, args, kwargs, out)
        if outputs:
            if self.count == self.target:
                self._flip(str(func), outputs)
            self.count += 1
        return out

    def _flip(self, op: str, outputs: list[torch.Tensor]) -> None:
        index = int(self.element * sum(t.numel() for t in outputs))
        for t in outputs:
            if index < t.numel():
                bit = int(self.bit * bit_width(t.dtype))
                flip_bit(t, index, bit)
                self.hit = Hit(op, t.dtype, bit, bit_field(t.dtype, bit))
                return
            index -= t.numel()
