"""The wire format: plain data round-trips exactly; anything else is refused when encoding; bytes that are
not an encoding of plain data are refused when decoding."""

from __future__ import annotations

import math

import pytest

from iquest_core.sandbox.inside import wire

PLAIN = [None, True, False, 0, -1, 2**200, -(2**200) + 1, 0.1, -0.0, math.inf, 1 + 2j, "", "caf\u00e9 \ud800",
         b"\x00\xff", [1, [2, (3, {4: frozenset({5})})]], {"a": {1, 2}, (1, "b"): [None]}, (), set(), frozenset()]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_round_trips_with_exact_types(value):
    back = wire.decode(wire.encode(value))
    assert back == value and repr(back) == repr(value) and type(back) is type(value)


def test_nan_round_trips():
    assert math.isnan(wire.decode(wire.encode(math.nan)))


class Int(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize("value", [Int(1), [Int(1)], {"k": Int(1)}, {Int(1): 1}, type("S", (str,), {})("x"),
                                   type("L", (list,), {})(), type("D", (dict,), {})(), bytearray(b"x"), object(),
                                   print, range(3), [[[]]] * 0 + [eval("[" * 70 + "]" * 70)]], ids=repr)
def test_anything_else_is_refused(value):
    with pytest.raises(wire.NotPlainData):
        wire.encode(value)


def test_size_cap():
    with pytest.raises(wire.NotPlainData, match="larger than"):
        wire.encode(b"x" * (wire.MAX_BYTES + 1))


@pytest.mark.parametrize("data", [b"", b"q", b"i\x00\x00\x00\x05\x01", b"l\xff\xff\xff\xff", b"NN",
                                  b"S\x00\x00\x00\x01l\x00\x00\x00\x00", b"d\x00\x00\x00\x01l\x00\x00\x00\x00N",
                                  b"s\x00\x00\x00\x01\xff", b"l\x00\x00\x00\x01" * 70 + b"N", "text"], ids=repr)
def test_malformed_bytes_are_refused(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)
