"""MinHash signatures of documents by the C++ kernel (csrc/text/minhash.h states the formula), bit-identical
to datasketch's MinHash with the same permutation parameters. `iquest_core.data.dedup` is the user-facing
API; this module checks arguments (ValueError naming the argument) and moves bytes to the kernel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

import iquest_core  # noqa: F401  (loads iquest_core._C, which registers torch.ops.iquest)

SCHEMES = {"affine32": np.uint32, "legacy": np.uint64}
_PARAMETER_BOUND = {"affine32": 1 << 32, "legacy": (1 << 61) - 1}


def minhash_signatures(documents: Sequence[bytes], a: np.ndarray, b: np.ndarray, *, ngram: int,
                       scheme: str) -> np.ndarray:
    """(len(documents), len(a)) signatures, dtype uint32 for "affine32" and uint64 for "legacy" (the dtype of
    datasketch's `hashvalues`). documents: UTF-8 bytes each; a, b: datasketch's `permutations` rows."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {sorted(SCHEMES)}, got {scheme!r}")
    if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
        raise ValueError(f"ngram: expected an int >= 1, got {ngram!r}")
    params = []
    for name, values in (("a", a), ("b", b)):
        values = np.asarray(values)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected a non-empty 1-D integer array, got shape {values.shape} dtype {values.dtype}")
        if values.min() < 0 or int(values.max()) >= _PARAMETER_BOUND[scheme]:
            raise ValueError(f"{name}: expected values in [0, {_PARAMETER_BOUND[scheme]}) for scheme {scheme!r}")
        params.append(torch.from_numpy(values.astype(np.int64)))
    if params[0].numel() != params[1].numel():
        raise ValueError(f"b: expected {params[0].numel()} entries like a, got {params[1].numel()}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, (bytes, bytearray, memoryview)):
            raise ValueError(f"documents: expected bytes, got {type(doc).__name__} at index {i}")
    lengths = np.fromiter((len(doc) for doc in documents), dtype=np.int64, count=len(documents))
    offsets = torch.from_numpy(np.concatenate(([0], np.cumsum(lengths))))
    joined = bytearray().join(documents)
    data = torch.frombuffer(joined, dtype=torch.uint8) if joined else torch.empty(0, dtype=torch.uint8)
    signatures = torch.ops.iquest.minhash_signatures(data, offsets, params[0], params[1], ngram, scheme)
    return signatures.numpy().astype(SCHEMES[scheme])
