"""The one format values cross between the program process and the test process in: plain data only.

Plain data: None, bool, int, float, complex, str, bytes, and list / tuple / dict / set / frozenset of plain
data, nested up to MAX_DEPTH, MAX_BYTES encoded at most. Exact types only: `type(x) is int`, never an
isinstance test, so a subclass (an int whose __eq__ always returns True) is refused by `encode`, and
`decode` can only ever build exact built-in types from the bytes' contents: no pickle, no user class, no
user __eq__ / __hash__ runs while decoding. A decoded dict key or set element is itself decoded plain data,
so hashing it runs only built-in code.

Encoding: a one-byte tag, then a 4-byte big-endian length or count where needed: N None, T True, F False,
i int (length, two's-complement big-endian bytes), f float (8 bytes IEEE big-endian), c complex (16), s str
(length, UTF-8 with surrogates passed through), b bytes (length, raw), l list / t tuple / S set /
Z frozenset (count, items), d dict (count, key, value, ...). A message on a stream is the 4-byte length of
its encoding followed by the encoding. This module imports only os and struct: it starts every sandbox.
"""

import os
import struct

MAX_BYTES = 16 << 20
MAX_DEPTH = 64
_LEN = struct.Struct(">I")
_FLOAT = struct.Struct(">d")
_COMPLEX = struct.Struct(">dd")
_SEQUENCES = {list: b"l", tuple: b"t", set: b"S", frozenset: b"Z"}
_BUILD = {b"l": list, b"t": tuple, b"S": set, b"Z": frozenset}


class NotPlainData(TypeError):
    """A value that may not cross: not an exact plain type, nested too deep, or too large."""


class WireError(ValueError):
    """Bytes that are not the encoding of plain data (truncated, unknown tag, unhashable key, ...)."""


def encode(value) -> bytes:
    """The encoding of value; NotPlainData naming where in it the first value that may not cross is."""
    parts = []
    size = [0]
    _encode(value, parts, size, 0, "value")
    return b"".join(parts)


def _put(parts, size, chunk) -> None:
    size[0] += len(chunk)
    if size[0] > MAX_BYTES:
        raise NotPlainData(f"larger than {MAX_BYTES} bytes encoded")
    parts.append(chunk)


def _encode(value, parts, size, depth, where) -> None:
    kind = type(value)
    if value is None:
        _put(parts, size, b"N")
    elif kind is bool:
        _put(parts, size, b"T" if value else b"F")
    elif kind is int:
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        _put(parts, size, b"i" + _LEN.pack(len(raw)) + raw)
    elif kind is float:
        _put(parts, size, b"f" + _FLOAT.pack(value))
    elif kind is complex:
        _put(parts, size, b"c" + _COMPLEX.pack(value.real, value.imag))
    elif kind is str or kind is bytes:
        raw = value.encode("utf-8", "surrogatepass") if kind is str else value
        _put(parts, size, (b"s" if kind is str else b"b") + _LEN.pack(len(raw)) + raw)
    elif kind in _SEQUENCES or kind is dict:
        if depth >= MAX_DEPTH:
            raise NotPlainData(f"{where}: nested deeper than {MAX_DEPTH}")
        items = list(value.items()) if kind is dict else list(value)
        _put(parts, size, (b"d" if kind is dict else _SEQUENCES[kind]) + _LEN.pack(len(items)))
        for i, item in enumerate(items):
            if kind is dict:
                _encode(item[0], parts, size, depth + 1, f"{where} key")
                _encode(item[1], parts, size, depth + 1, f"{where}[{i}]")
            else:
                _encode(item, parts, size, depth + 1, f"{where}[{i}]")
    else:
        raise NotPlainData(f"{where}: {_type_name(kind)} is not plain data (None, bool, int, float, complex, "
                           "str, bytes, list, tuple, dict, set, frozenset; subclasses are refused)")


def _type_name(kind) -> str:
    name = type.__getattribute__(kind, "__qualname__")
    return name if type(name) is str else "an object"


def decode(data: bytes):
    """The plain value data encodes; WireError if data is anything else (trailing bytes included)."""
    if type(data) is not bytes or len(data) > MAX_BYTES:
        raise WireError("not a bytes message within the size cap")
    value, end = _decode(memoryview(data), 0, 0)
    if end != len(data):
        raise WireError(f"{len(data) - end} trailing bytes")
    return value


def _take(data, at, count):
    if count < 0 or at + count > len(data):
        raise WireError("truncated")
    return bytes(data[at:at + count]), at + count


def _decode(data, at, depth):
    tag, at = _take(data, at, 1)
    if tag == b"N":
        return None, at
    if tag in (b"T", b"F"):
        return tag == b"T", at
    if tag == b"f":
        raw, at = _take(data, at, 8)
        return _FLOAT.unpack(raw)[0], at
    if tag == b"c":
        raw, at = _take(data, at, 16)
        return complex(*_COMPLEX.unpack(raw)), at
    raw, at = _take(data, at, 4)
    length = _LEN.unpack(raw)[0]
    if tag == b"i":
        raw, at = _take(data, at, length)
        return int.from_bytes(raw, "big", signed=True), at
    if tag in (b"s", b"b"):
        raw, at = _take(data, at, length)
        try:
            return (raw.decode("utf-8", "surrogatepass") if tag == b"s" else raw), at
        except UnicodeDecodeError:
            raise WireError("str that is not UTF-8") from None
    if tag not in _BUILD and tag != b"d":
        raise WireError(f"unknown tag {tag!r}")
    if depth >= MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if length > len(data) - at:  # every item takes at least one byte
        raise WireError("truncated")
    items = []
    for _ in range(length * 2 if tag == b"d" else length):
        item, at = _decode(data, at, depth + 1)
        items.append(item)
    try:
        if tag == b"d":
            return dict(zip(items[0::2], items[1::2])), at
        return _BUILD[tag](items), at
    except TypeError:
        raise WireError("unhashable dict key or set element") from None


def send(fd: int, message) -> None:
    """Write one encoded message (length, then encoding) to a stream descriptor."""
    payload = encode(message)
    view = memoryview(_LEN.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other process closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int):
    """Read one message; EOFError when the stream ends, WireError when it is not plain data."""
    length = _LEN.unpack(_read_exactly(fd, 4))[0]
    if length > MAX_BYTES:
        raise WireError(f"message of {length} bytes is over the {MAX_BYTES}-byte cap")
    return decode(_read_exactly(fd, length))
