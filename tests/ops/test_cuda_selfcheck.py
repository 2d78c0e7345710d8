"""The run-time self-check of the CUDA kernels (iquest_core.ops.cuda_selfcheck).

On a CUDA machine: every (op, dtype, head_dim) the CUDA kernels take passes it, and check_once refuses a
kernel that disagrees with the reference. Everywhere: the self-check's cases and tolerances accept a correct
kernel (the CPU one, in the same dtypes) and flag a disagreeing or nondeterministic one.
"""

import pytest
import torch

from iquest_core.train import selftest
from iquest_core.ops import attention_with_lse, cuda_selfcheck, loop_attention
from iquest_core.ops.cuda_selfcheck import CudaKernelSelfCheckError, check_cuda_kernels, run_cases
from tests.helpers import CUDA_DTYPES, CUDA_HEAD_DIMS, CUDA_ONLY

OPS = ("loop_attention", "attention_with_lse")


def _wrong_reference(reference):
    """The reference with its (first) output scaled by 1.25: a 'kernel' compared with it is 20% off."""
    def wrong(*args, **kwargs):
        result = reference(*args, **kwargs)
        return (result[0] * 1.25, *result[1:]) if isinstance(result, tuple) else result * 1.25
    return wrong


@pytest.fixture
def wrong_references(monkeypatch):
    for name in ("loop_attention_reference", "attention_with_lse_reference"):
        monkeypatch.setattr(cuda_selfcheck, name, _wrong_reference(getattr(cuda_selfcheck, name)))


def test_selfcheck_configurations_are_the_cuda_kernels():
    assert set(cuda_selfcheck.CUDA_DTYPES) == set(CUDA_DTYPES)
    assert set(cuda_selfcheck.CUDA_HEAD_DIMS) == set(CUDA_HEAD_DIMS)


@pytest.mark.parametrize("head_dim", CUDA_HEAD_DIMS, ids=lambda d: f"D{d}")
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_selfcheck_accepts_the_cpu_kernels(op, dtype, head_dim):
    """The cases and tolerances of the self-check pass a correct kernel (the CPU one) in the CUDA dtypes."""
    results = run_cases(op, "cpu", dtype, head_dim)
    assert len(results) == 2
    for r in results:
        assert r.passed, r.describe()
        assert r.errors and all(0 <= e <= r.tolerance for e in r.errors.values()), r.describe()


@pytest.mark.parametrize("op", OPS)
def test_selfcheck_flags_a_kernel_that_disagrees(op, wrong_references):
    for r in run_cases(op, "cpu", torch.bfloat16, 64):
        assert not r.passed and r.deterministic and r.exception is None
        assert r.errors["out"] > r.tolerance
        assert "relative error above" in r.describe() and op in r.describe()


@pytest.mark.parametrize("op", OPS)
def test_selfcheck_flags_a_nondeterministic_kernel(op, monkeypatch):
    calls = []
    leaves = cuda_selfcheck._leaves

    def leaves_changing_on_the_second_run(tensors, device, dtype):
        calls.append(None)
        result = leaves(tensors, device, dtype)
        if len(calls) % 2 == 0:  # run() is called twice per case; nudge one query value the second time
            with torch.no_grad():
                result[0].view(-1)[torch.randint(result[0].numel(), ())] += 0.25
        return result

    monkeypatch.setattr(cuda_selfcheck, "_leaves", leaves_changing_on_the_second_run)
    for r in run_cases(op, "cpu", torch.float16, 64):
        assert not r.deterministic and not r.passed, r.describe()
        assert "different bits" in r.describe()


@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_kernels_pass_the_selfcheck(device):
    results = check_cuda_kernels(device)
    covered = {(r.op, r.dtype, r.head_dim) for r in results}
    assert covered == {(op, d, h) for op in OPS for d in CUDA_DTYPES for h in CUDA_HEAD_DIMS}
    failures = [r.describe() for r in results if not r.passed]
    assert not failures, "\n".join(failures)


def test_selftest_command_fails_when_it_tested_nothing(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert selftest.main(["--no-cpu"]) == 1
    assert "nothing was tested" in capsys.readouterr().out


@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_selftest_command_passes_on_cuda(device, capsys):
    assert selftest.main(["--no-cpu"]) == 0
    assert "cases passed" in capsys.readouterr().out


def _call(op, device, dtype, head_dim):
    q = torch.randn(1, 20, 2, head_dim, device=device, dtype=dtype)
    kv = torch.randn(1, 20, 1, head_dim, device=device, dtype=dtype)
    if op == "loop_attention":
        w, b = torch.randn(2, head_dim, device=device, dtype=dtype), torch.randn(2, device=device, dtype=dtype)
        return loop_attention(q, kv, kv, kv, kv, w, b)
    return attention_with_lse(q, kv, kv)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_first_cuda_call_refuses_a_kernel_that_disagrees(device, op, monkeypatch, wrong_references):
    monkeypatch.setattr(cuda_selfcheck, "_checked", set())
    for _ in range(2):  # raised at every call, not only the first
        with pytest.raises(CudaKernelSelfCheckError, match=rf"CUDA kernel of {op} disagrees"):
            _call(op, device, torch.bfloat16, 64)
    assert not cuda_selfcheck._checked


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_selfcheck_runs_once_per_op_dtype_and_head_dim(device, op, monkeypatch):
    monkeypatch.setattr(cuda_selfcheck, "_checked", set())
    calls = []
    original = cuda_selfcheck.run_cases

    def counting_run_cases(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(cuda_selfcheck, "run_cases", counting_run_cases)
    for dtype, head_dim in [(torch.bfloat16, 64), (torch.bfloat16, 64), (torch.float16, 128), (torch.float16, 128)]:
        _call(op, device, dtype, head_dim)
    assert [(a[0], a[2], a[3]) for a in calls] == [(op, torch.bfloat16, 64), (op, torch.float16, 128)]
    assert len(cuda_selfcheck._checked) == 2
