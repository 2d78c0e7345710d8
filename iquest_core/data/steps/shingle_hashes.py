"""Shingle sets as sorted uint64 arrays computed with numpy, and exact Jaccard verdicts of many pairs at
once: the vectorised form of `dedup.shingles` + `dedup.jaccard` for the dedup step's cluster stage.

    hashes = shingle_hashes(text.encode("utf-8"), ngram=5)   # == one 64-bit hash per dedup.shingles(text) item
    ok = similar_to(hashes_a, [hashes_b, hashes_c], 0.8)    # [jaccard(a, b) >= 0.8, jaccard(a, c) >= 0.8]

Tokens and shingles are those of dedup.shingles (maximal runs of bytes in [A-Za-z0-9_] or >= 0x80; each
run of `ngram` consecutive tokens; fewer tokens than ngram: one shingle of all of them). A token's hash is
the polynomial of its bytes (base P, mod 2^64; token bytes are never 0) through splitmix64's finaliser; a
shingle's, the polynomial of its tokens' hashes (base R) through the finaliser. Equal shingles have
equal hashes; two different ones collide only if those 64-bit values do, so the counts of common and of
all shingles, and the verdicts, are those of the byte-string sets unless such a collision falls between
the two documents compared. Memory: 8 bytes per shingle and a few temporaries of 8 bytes per text byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_P = np.uint64(0x100000001B3)            # odd: invertible mod 2^64
_Q = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_R = np.uint64(0x9E3779B97F4A7C15)
_BLOCK_BITS = 16
_WORD = np.zeros(256, dtype=bool)
for _lo, _hi in ((b"A", b"Z"), (b"a", b"z"), (b"0", b"9"), (b"_", b"_"), (b"\x80", b"\xff")):
    _WORD[_lo[0]:_hi[0] + 1] = True


def _accumulated(base: np.uint64, count: int) -> np.ndarray:
    """base ** arange(count) mod 2^64."""
    powers = np.full(count, base, dtype=np.uint64)
    powers[0] = 1
    return np.multiply.accumulate(powers)


_LOW_POWERS = {int(base): _accumulated(base, 1 << _BLOCK_BITS) for base in (_P, _Q)}


def _powers(base: np.uint64, exponents: np.ndarray) -> np.ndarray:
    """base ** exponents mod 2^64 (a table of 2^16 powers and one of the high parts: bounded memory)."""
    if exponents.max(initial=0) >> _BLOCK_BITS == 0:
        return _LOW_POWERS[int(base)][exponents]
    high = _accumulated(_LOW_POWERS[int(base)][-1] * base, int(exponents.max(initial=0) >> _BLOCK_BITS) + 1)
    return _LOW_POWERS[int(base)][exponents & ((1 << _BLOCK_BITS) - 1)] * high[exponents >> _BLOCK_BITS]


def _mix(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def shingle_hashes(data: bytes, ngram: int) -> np.ndarray:
    """The sorted, distinct 64-bit hashes of the shingles of the UTF-8 text `data` (module docstring)."""
    text = np.frombuffer(data, dtype=np.uint8)
    edges = np.flatnonzero(np.diff(_WORD[text], prepend=False, append=False))
    starts, ends = edges[0::2], edges[1::2]
    if not len(starts):
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(text) + 1, dtype=np.uint64)
        np.cumsum(text.astype(np.uint64) * _powers(_Q, np.arange(len(text), dtype=np.int64)), out=prefix[1:])
        tokens = (prefix[ends] - prefix[starts]) * _powers(_P, ends - 1)  # sum of byte * P ** (end - 1 - k)
        tokens = _mix(tokens)
        width = min(ngram, len(tokens))
        count = len(tokens) - width + 1
        shingles = np.zeros(count, dtype=np.uint64)
        for t in range(width):
            shingles = shingles * _R + tokens[t:t + count]
        shingles = np.sort(_mix(shingles))
        return shingles[np.concatenate(([True], shingles[1:] != shingles[:-1]))]


def similar_to(a: np.ndarray, others: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """[|a & b| / |a | b| >= threshold for b in others] (1.0 for two empty sets, as dedup.jaccard) for sorted
    distinct uint64 arrays, computed together."""
    sizes = np.fromiter(map(len, others), dtype=np.int64, count=len(others))
    joined = np.concatenate(others) if len(others) else np.zeros(0, np.uint64)
    if len(a) and len(joined):
        found = a[np.minimum(np.searchsorted(a, joined), len(a) - 1)] == joined
        common = np.bincount(np.repeat(np.arange(len(others)), sizes), weights=found, minlength=len(others))
    else:
        common = np.zeros(len(others))
    union = len(a) + sizes - common
    jaccard = np.divide(common, union, out=np.ones(len(others)), where=union > 0)
    return jaccard >= threshold
