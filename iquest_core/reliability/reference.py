"""Pure-numpy statement of the fingerprint formula of csrc/fingerprint/fingerprint.h, word for word.
Slow and plain; the tests hold the compiled kernels to it."""

from __future__ import annotations

import numpy as np
import torch

K_WEIGHT = np.uint64(0x9E3779B97F4A7C15)
K_POSITION = np.uint64(0xD6E8FEB86659FD93)
K_SALT = np.uint64(0x2545F4914F6CDD1D)

# FingerprintDtype of fingerprint.h: stable codes, never renumbered.
DTYPE_CODES = {
    torch.bool: 1, torch.uint8: 2, torch.int8: 3, torch.int16: 4, torch.int32: 5, torch.int64: 6,
    torch.uint16: 7, torch.uint32: 8, torch.uint64: 9,
    torch.float16: 16, torch.bfloat16: 17, torch.float32: 18, torch.float64: 19,
    torch.float8_e4m3fn: 32, torch.float8_e5m2: 33, torch.float8_e4m3fnuz: 34, torch.float8_e5m2fnuz: 35,
    torch.float8_e8m0fnu: 36,
    torch.complex64: 48, torch.complex128: 49, torch.complex32: 50,
}


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def words_of(t: torch.Tensor) -> np.ndarray:
    """The byte stream of the formula as little-endian uint64 words: row-major elements, zero-padded."""
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    raw += bytes(-len(raw) % 8)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def header_key(t: torch.Tensor) -> np.uint64:
    """K: the fmix64 chain over [dtype code, ndim, *shape], starting from K_SALT."""
    k = np.array([K_SALT], dtype=np.uint64)
    for h in [DTYPE_CODES[t.dtype], t.dim(), *t.shape]:
        k = fmix64(k + np.uint64(h))
    return k


def fingerprint_reference(t: torch.Tensor) -> torch.Tensor:
    """Digest of t as `iquest_core.reliability.fingerprint` computes it: int64 (2,) on the CPU."""
    w = words_of(t)
    i = np.arange(w.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        weighted = np.sum(w * (np.uint64(2) * i * K_WEIGHT + np.uint64(1)), dtype=np.uint64)
        mixed = np.sum(fmix64(w ^ (i * K_POSITION + K_SALT)), dtype=np.uint64)
        k = header_key(t)
        digest = np.concatenate([fmix64(weighted + k), fmix64(mixed + fmix64(k))])
    return torch.from_numpy(digest.view(np.int64).copy())
