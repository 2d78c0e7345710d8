"""`fingerprint` and `fingerprint_many`: the tensor fingerprint kernels (128-bit digests of tensors'
logical contents, dtype and shape).

The formula (two 64-bit lanes of sums mod 2^64 over the tensor's little-endian 64-bit words, see
csrc/fingerprint/fingerprint.h and the numpy statement in `iquest_core.reliability.reference`) makes
the digest independent of strides, thread count, blocking and device: equal logical contents, dtype
and shape give equal digests on CPU and CUDA. Every single bit flip changes it. Registered as the
custom op ``torch.ops.iquest.fingerprint_many`` (fake implementation below); its CUDA implementation
checks the kernel against the CPU kernel on the first use of each device (eager or compiled).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from iquest_core.ops.cuda_dispatch import register_checked_cuda_kernel, unchecked_cuda_kernel

_OP = torch.ops.iquest.fingerprint_many.default
_VERIFIED_DEVICES: set[torch.device] = set()


def _check(name: str, t: object) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise ValueError(f"{name}: expected a strided (dense) tensor, got layout {t.layout}")


def fingerprint(t: torch.Tensor) -> torch.Tensor:
    """Digest of t: an int64 tensor of shape (2,) on t's device (the two lanes' bit patterns).

    Covers t's logical elements in row-major order (whatever its strides), its dtype and its shape;
    autograd history and requires_grad are ignored. Any dense dtype (floats, float8, ints, bool, complex).
    """
    _check("t", t)
    return fingerprint_many([t])[0]  # the CUDA device self-check there covers single tensors too


def fingerprint_many(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Digests of all tensors in one kernel launch: int64 (n, 2), row i == fingerprint(tensors[i]).

    All tensors must be dense and on one device (checked by the op, which names the offending index);
    the result lives there. An empty sequence gives (0, 2) on the CPU.
    """
    tensors = list(tensors)
    if not all(isinstance(t, torch.Tensor) and t.layout == torch.strided for t in tensors):
        for i, t in enumerate(tensors):
            _check(f"tensors[{i}]", t)
    if not tensors:
        return torch.empty(0, 2, dtype=torch.int64)
    return _OP(tensors)


def _verify_device(tensors: list[torch.Tensor]) -> None:
    """First use of a CUDA device in this process: its kernel must reproduce the CPU kernel's digests on
    small random tensors (several blocks, odd sizes, several dtypes); it is never trusted silently.
    Skipped while a CUDA graph is captured (the check synchronises)."""
    device = tensors[0].device
    if device in _VERIFIED_DEVICES or torch.cuda.is_current_stream_capturing():
        return
    gen = torch.Generator().manual_seed(0)  # not the global generator: a training run's stream stays its own
    probe = [torch.randn(3 * 2**16 + 5, generator=gen), torch.randint(-9, 9, (7, 3), dtype=torch.int8, generator=gen),
             torch.zeros(0), torch.randn(33, generator=gen).bfloat16()]
    on_device = unchecked_cuda_kernel("fingerprint_many")([t.to(device) for t in probe]).cpu()
    if not torch.equal(on_device, _OP(probe)):
        raise RuntimeError(f"fingerprint kernel self-check failed on {device}: its digests differ from the CPU "
                           "kernel's for the same tensors (a miscompiled kernel or a faulty device)")
    _VERIFIED_DEVICES.add(device)


@torch.library.register_fake("iquest::fingerprint_many")
def _fingerprint_many_fake(tensors):
    if not tensors:
        raise ValueError("tensors: expected at least one tensor")
    for i, t in enumerate(tensors):
        _check(f"tensors[{i}]", t)
        if t.device != tensors[0].device:
            raise ValueError(f"tensors[{i}]: expected device {tensors[0].device} like tensors[0], got {t.device}")
    return tensors[0].new_empty((len(tensors), 2), dtype=torch.int64)


register_checked_cuda_kernel("fingerprint_many", lambda tensors: _verify_device(tensors))
