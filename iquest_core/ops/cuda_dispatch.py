"""The CUDA implementation of the public ops: check first, then the C++ kernel.

A CUDA build registers each op's C++ CUDA kernel as an op of its own, ``iquest::<op>_cuda_unchecked``
(same signature; python/op_signatures.h). `register_checked_cuda_kernel` makes the public op's CUDA
implementation a Python kernel that runs a check (the first-use self-check of the kernel) and then the
unchecked op. Being the op's implementation, it runs wherever the op runs on CUDA: eager calls, the
backward autograd calls, the ring's blocks and torch.compile graphs (which call the op at run time;
tracing uses the fake implementations). A build without CUDA kernels raises CudaKernelsNotBuiltError.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import iquest_core  # noqa: F401  (loads the compiled kernels)


class CudaKernelsNotBuiltError(RuntimeError):
    """iquest_core._C was built without its CUDA kernels."""


def unchecked_cuda_kernel(op: str) -> Callable:
    """The C++ CUDA kernel of public op `op` (``torch.ops.iquest.<op>_cuda_unchecked``); raises
    CudaKernelsNotBuiltError when the build has none."""
    kernel = _find_op(f"{op}_cuda_unchecked")
    if kernel is None:
        raise CudaKernelsNotBuiltError(
            f"iquest_core: the CUDA kernels are not built (iquest_core._C has no CUDA kernel for iquest::{op}); "
            "rebuild with nvcc on PATH and without IQUEST_SKIP_CUDA_BUILD, or keep the tensors on the CPU")
    return kernel


def _find_op(name: str) -> torch._ops.OpOverload | None:
    """``torch.ops.iquest.<name>.default``, or None when the build defines no such op."""
    try:
        return getattr(torch.ops.iquest, name).default
    except AttributeError:
        return None


def checked_kernel(op: str, check: Callable[..., None]) -> Callable:
    """The kernel `register_checked_cuda_kernel` registers: check(*args), then the unchecked kernel."""
    def kernel(*args):
        unchecked = unchecked_cuda_kernel(op)
        check(*args)
        return unchecked(*args)
    kernel.__name__ = f"{op}_cuda_checked"
    return kernel


def register_checked_cuda_kernel(op: str, check: Callable[..., None]) -> None:
    """Registers the CUDA implementation of ``iquest::<op>``: `check` called with the op's arguments (it
    raises to refuse the call), then ``iquest::<op>_cuda_unchecked`` on the same arguments."""
    torch.library.register_kernel(f"iquest::{op}", "cuda", checked_kernel(op, check))
