"""The public ops' CUDA implementation (iquest_core.ops.cuda_dispatch): it runs the kernel's check, then
the C++ CUDA kernel `<op>_cuda_unchecked`, and it is what compiled graphs call at run time.

Without a GPU the registered CUDA kernels are reached by redispatching to the CUDA key with CPU tensors
(the unchecked kernel is substituted); a build without CUDA kernels says so.
"""

import importlib

import pytest
import torch

from iquest_core.ops import attention_with_lse, cuda_dispatch, cuda_selfcheck
from iquest_core.ops.cuda_dispatch import CudaKernelsNotBuiltError, checked_kernel

ops_fingerprint = importlib.import_module("iquest_core.ops.fingerprint")  # the package exports the function
CUDA_KEY = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
OPS = ("loop_attention", "loop_attention_backward", "attention_with_lse", "attention_with_lse_backward",
       "fingerprint_many")
CUDA_BUILT = cuda_dispatch._find_op("loop_attention_cuda_unchecked") is not None


def _args(op):
    """Valid arguments of `op` (CPU tensors) and the query tensor its check is called with."""
    q = torch.randn(1, 9, 4, 64, dtype=torch.bfloat16)
    kv = torch.randn(1, 9, 2, 64, dtype=torch.bfloat16)
    scale = 0.125
    if op.startswith("loop_attention"):
        w, b = torch.randn(4, 64, dtype=torch.bfloat16), torch.randn(4, dtype=torch.bfloat16)
        forward = (q, kv, kv, kv, kv, w, b, 3, scale, None, None)
        if op == "loop_attention":
            return forward, q
        saved = torch.ops.iquest.loop_attention(*forward)[1:]
        return (torch.randn_like(q), q, kv, kv, kv, kv, w, b, *saved, 3, scale, None, None), q
    if op == "attention_with_lse":
        return (q, kv, kv, 0, 0, 0, scale, None, None, False), q
    if op == "attention_with_lse_backward":
        out, lse = attention_with_lse(q, kv, kv)
        return (torch.randn_like(q), torch.randn_like(lse), q, kv, kv, out, lse, 0, 0, 0, scale, None, None,
                False), q
    tensors = [q, torch.arange(5)]
    return (tensors,), tensors


@pytest.mark.parametrize("op", OPS)
def test_the_cuda_implementation_checks_then_calls_the_unchecked_kernel(op, monkeypatch):
    events = []
    monkeypatch.setattr(cuda_selfcheck, "check_once", lambda name, q, kernel: events.append(("check", name, q)))
    monkeypatch.setattr(ops_fingerprint, "_verify_device", lambda tensors: events.append(("check", op, tensors)))

    def unchecked(name):
        def kernel(*args):
            events.append(("kernel", name))
            return getattr(torch.ops.iquest, name).default(*args)  # the CPU kernel stands in for the CUDA one
        return kernel

    monkeypatch.setattr(cuda_dispatch, "unchecked_cuda_kernel", unchecked)
    args, checked = _args(op)
    result = getattr(torch.ops.iquest, op).default.redispatch(CUDA_KEY, *args)
    family = "fingerprint_many" if op == "fingerprint_many" else op.removesuffix("_backward")
    assert [e[:2] for e in events] == [("check", family), ("kernel", op)]
    if op == "fingerprint_many":  # the dispatcher passes a new list of the same tensors
        assert [id(t) for t in events[0][2]] == [id(t) for t in checked]
    else:
        assert events[0][2] is checked
    expected = getattr(torch.ops.iquest, op).default(*args)
    for got, want in zip(result if isinstance(result, tuple) else [result],
                         expected if isinstance(expected, tuple) else [expected]):
        assert torch.equal(got, want)


@pytest.mark.parametrize("op", OPS)
def test_a_missing_cuda_build_says_so(op, monkeypatch):
    args, _ = _args(op)
    if not CUDA_BUILT:  # this build: the real answer
        with pytest.raises(CudaKernelsNotBuiltError, match=rf"the CUDA kernels are not built .*iquest::{op}\)"):
            getattr(torch.ops.iquest, op).default.redispatch(CUDA_KEY, *args)
    monkeypatch.setattr(cuda_dispatch, "_find_op", lambda name: None)
    with pytest.raises(CudaKernelsNotBuiltError, match=rf"the CUDA kernels are not built .*iquest::{op}\)"):
        getattr(torch.ops.iquest, op).default.redispatch(CUDA_KEY, *args)


@pytest.mark.skipif(not CUDA_BUILT, reason="this build has no CUDA kernels (CI builds them)")
@pytest.mark.parametrize("op", OPS)
def test_unchecked_kernels_have_the_signatures_of_the_public_ops(op):
    public = getattr(torch.ops.iquest, op).default._schema
    unchecked = getattr(torch.ops.iquest, f"{op}_cuda_unchecked").default._schema
    assert str(unchecked).replace(f"{op}_cuda_unchecked(", f"{op}(", 1) == str(public)
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"iquest::{op}_cuda_unchecked", "CUDA")
    assert not torch._C._dispatch_has_kernel_for_dispatch_key(f"iquest::{op}_cuda_unchecked", "CPU")


@pytest.fixture
def twice_op():
    """iquest_dispatch_test::twice(x) = 2x with a fake implementation, its CPU kernel left to the test."""
    lib = torch.library.Library("iquest_dispatch_test", "DEF")
    lib.define("twice(Tensor x) -> Tensor")
    torch.library.register_fake("iquest_dispatch_test::twice", lambda x: torch.empty_like(x), lib=lib)
    yield lib
    lib._destroy()


def test_compiled_graphs_call_a_kernel_registered_this_way_at_run_time(twice_op, monkeypatch):
    """The property the self-check relies on: a Python kernel registered for a device (here the CPU, on a
    test op) is called by a torch.compile graph on every run, not only while tracing."""
    checks = []
    monkeypatch.setattr(cuda_dispatch, "unchecked_cuda_kernel", lambda op: lambda x: x * 2)
    torch.library.register_kernel("iquest_dispatch_test::twice", "cpu",
                                  checked_kernel("twice", lambda x: checks.append(x.shape)), lib=twice_op)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: torch.ops.iquest_dispatch_test.twice(x).sin() + 1, fullgraph=True)
    for run in range(1, 4):
        x = torch.randn(3, 5)
        assert torch.allclose(compiled(x), (2 * x).sin() + 1, atol=1e-6)  # inductor's sin differs in the last bit
        assert checks == [(3, 5)] * run
