"""`fingerprint` and `fingerprint_many` (the kernels of `iquest_core.ops.fingerprint`): 128-bit digests
of tensors' logical contents, dtype and shape, equal on CPU and CUDA for equal contents; and
`digest_hex`, their printable form for logs, JSON and checkpoint metadata."""

from __future__ import annotations

import torch

from iquest_core.ops.fingerprint import fingerprint, fingerprint_many

__all__ = ["digest_hex", "fingerprint", "fingerprint_many"]


def digest_hex(digest: torch.Tensor) -> str:
    """32 hex digits of a (2,) digest (lane 0 first), for logs, JSON and checkpoint metadata."""
    if digest.shape != (2,) or digest.dtype != torch.int64:
        raise ValueError(f"digest: expected an int64 tensor of shape (2,), got {digest.dtype} {tuple(digest.shape)}")
    return "".join(f"{lane % 2**64:016x}" for lane in digest.tolist())
