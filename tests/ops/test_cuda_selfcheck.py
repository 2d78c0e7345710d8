"""The run-time self-check of the CUDA kernels (iquest_core.ops.cuda_selfcheck).

On a CUDA machine: every (op, dtype, head_dim) the CUDA kernels take passes it, and check_once refuses a
kernel that disagrees with the reference, eager and compiled. Everywhere: the self-check's cases and
tolerances accept a correct kernel (the CPU one, in the same dtypes, the production-like shape included)
and flag a disagreeing, nondeterministic, off-by-one-window or NaN-row one (mutated kernels run through
the check on the CPU); check_once checks once per configuration.
"""

import threading

import pytest
import torch

from iquest_core.ops import selftest
from iquest_core.ops.selftest import KERNELS
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
    results = run_cases(op, KERNELS[op], "cpu", dtype, head_dim)
    cases = cuda_selfcheck.LOOP_CASES if op == "loop_attention" else cuda_selfcheck.ATTENTION_CASES
    assert [r.case for r in results] == [c.name for c in cases]
    for r in results:
        assert r.passed, r.describe()
        assert r.errors and all(0 <= e <= r.tolerances[k] for k, e in r.errors.items()), r.describe()


def test_the_cases_cover_the_edges():
    loop, attention = cuda_selfcheck.LOOP_CASES, cuda_selfcheck.ATTENTION_CASES
    for cases in (loop, attention):
        assert any(c.window == 1 for c in cases) and any((c.window or 0) >= 127 for c in cases)
        assert any(c.packed for c in cases) and any(c.heads == c.kv_heads for c in cases)
        assert any(not c.packed and c.lengths[1] == 1 for c in cases)
        assert any(not c.packed and 1 < c.lengths[1] < 64 for c in cases)
    assert any(c.q_start + c.lengths[1] > 0 and c.k_start > c.q_start for c in attention)  # rows with no key
    for case in cuda_selfcheck.PRODUCTION_CASES.values():
        assert (case.heads, case.kv_heads, case.lengths) == (40, 8, (1, 2048))
    assert cuda_selfcheck.PRODUCTION_CASES["loop_attention"].window == 64


@pytest.mark.parametrize("op", OPS)
def test_production_like_case_accepts_the_cpu_kernel(op):
    """H=40, Hkv=8, D=128, L=2048 against a float32 reference, per row (forward only)."""
    r = cuda_selfcheck.run_case(op, KERNELS[op], cuda_selfcheck.PRODUCTION_CASES[op], "cpu", torch.bfloat16, 128)
    assert r.passed, r.describe()
    assert set(r.errors) == ({"out (per row)", "lse (abs)"} if op == "attention_with_lse" else {"out (per row)"})


@pytest.mark.parametrize("op", OPS)
def test_selfcheck_flags_a_kernel_that_disagrees(op, wrong_references):
    for r in run_cases(op, KERNELS[op], "cpu", torch.bfloat16, 64):
        assert not r.passed and r.deterministic and r.exception is None
        assert r.errors["out (per row)"] > r.tolerances["out (per row)"]
        assert "error above tolerance" in r.describe() and op in r.describe()


def test_selfcheck_flags_a_kernel_with_an_off_by_one_window():
    """Mutations run through the check on the CPU: the window branch sees one key too many."""
    mutated = {"loop_attention": lambda *a, window, **k: loop_attention(*a, window=window + 1, **k),
               "attention_with_lse": lambda *a, window, **k: attention_with_lse(*a, window=window and window + 1, **k)}
    for op, cases in zip(OPS, (cuda_selfcheck.LOOP_CASES, cuda_selfcheck.ATTENTION_CASES)):
        results = {r.case: r for r in run_cases(op, mutated[op], "cpu", torch.bfloat16, 64)}
        narrow = [c.name for c in cases if c.window is not None and c.window < max(c.lengths)]
        assert narrow and all(not results[name].passed for name in narrow), op
        assert any(c.window == 1 and c.name in narrow for c in cases)


def test_selfcheck_flags_a_kernel_with_a_nan_row():
    def nan_row(kernel):
        def mutated(*args, **kwargs):
            result = kernel(*args, **kwargs)
            out = result[0] if isinstance(result, tuple) else result
            row = torch.zeros_like(out, dtype=torch.bool)
            row.view(-1, out.shape[-1])[out.numel() // out.shape[-1] // 2] = True
            out = torch.where(row, torch.full_like(out, float("nan")), out)
            return (out, *result[1:]) if isinstance(result, tuple) else out
        return mutated

    for op in OPS:
        for r in run_cases(op, nan_row(KERNELS[op]), "cpu", torch.float16, 128):
            assert not r.passed and r.errors["out (per row)"] == float("inf"), r.describe()


def test_check_once_checks_once_and_is_silent_while_a_check_runs(monkeypatch):
    """While a check runs (its backward kernels run on autograd's device threads), calls from any thread
    return at once instead of waiting for the check's lock; afterwards the first call runs the check."""
    calls = []
    monkeypatch.setattr(cuda_selfcheck, "_checked", set())
    monkeypatch.setattr(cuda_selfcheck, "run_cases", lambda *args: calls.append(args[0]) or [])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    q = torch.empty(1, 8, 2, 64, dtype=torch.bfloat16, device="meta")
    with cuda_selfcheck._inside_check():
        cuda_selfcheck.check_once("loop_attention", q, loop_attention)
        worker = threading.Thread(target=cuda_selfcheck.check_once, args=("loop_attention", q, loop_attention))
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert calls == []
    for _ in range(2):
        cuda_selfcheck.check_once("loop_attention", q, loop_attention)
    cuda_selfcheck.check_once("loop_attention", q.float(), loop_attention)  # float32 runs on the CPU kernels: not checked
    assert calls == ["loop_attention"]


@pytest.mark.parametrize("op", OPS)
def test_selfcheck_flags_a_nondeterministic_kernel(op, monkeypatch):
    calls = []
    leaves = cuda_selfcheck._leaves

    def leaves_changing_on_the_second_run(tensors, device, dtype):
        calls.append(None)
        result = leaves(tensors, device, dtype)
        if len(calls) % 2 == 0:  # run() is called twice per case; nudge the queries the second time
            with torch.no_grad():
                result[0].add_(0.25)
        return result

    monkeypatch.setattr(cuda_selfcheck, "_leaves", leaves_changing_on_the_second_run)
    for r in run_cases(op, KERNELS[op], "cpu", torch.float16, 64):
        assert not r.deterministic and not r.passed, r.describe()
        assert "different bits" in r.describe()


@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_kernels_pass_the_selfcheck(device):
    results = check_cuda_kernels(KERNELS, device)
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
    assert [(a[0], a[3], a[4]) for a in calls] == [(op, torch.bfloat16, 64), (op, torch.float16, 128)]
    assert len(cuda_selfcheck._checked) == 2


def _compiled(op):
    if op == "loop_attention":
        return torch.compile(lambda q, kv, w, b: loop_attention(q, kv, kv, kv, kv, w, b), fullgraph=True)
    return torch.compile(lambda q, kv, w, b: attention_with_lse(q, kv, kv)[0], fullgraph=True)


def _compiled_inputs(device):
    q = torch.randn(1, 20, 2, 64, device=device, dtype=torch.bfloat16, requires_grad=True)
    kv = torch.randn(1, 20, 1, 64, device=device, dtype=torch.bfloat16)
    return q, kv, torch.randn(2, 64, device=device, dtype=torch.bfloat16), torch.randn(2, device=device,
                                                                                      dtype=torch.bfloat16)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_compiled_graphs_refuse_a_kernel_that_disagrees(device, op, monkeypatch, wrong_references):
    torch._dynamo.reset()
    monkeypatch.setattr(cuda_selfcheck, "_checked", set())
    compiled = _compiled(op)
    for _ in range(2):
        with pytest.raises(CudaKernelSelfCheckError, match=rf"CUDA kernel of {op} disagrees"):
            compiled(*_compiled_inputs(device))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_compiled_graphs_run_the_selfcheck_once(device, op, monkeypatch):
    torch._dynamo.reset()
    monkeypatch.setattr(cuda_selfcheck, "_checked", set())
    calls = []
    original = cuda_selfcheck.run_cases
    monkeypatch.setattr(cuda_selfcheck, "run_cases", lambda *args: calls.append(args) or original(*args))
    compiled = _compiled(op)
    for _ in range(2):
        compiled(*_compiled_inputs(device)).float().sum().backward()
    assert [(a[0], a[3], a[4]) for a in calls] == [(op, torch.bfloat16, 64)]
    assert cuda_selfcheck._checked == {(op, torch.cuda.current_device(), torch.bfloat16, 64)}


def test_gradients_that_are_exactly_zero_are_judged_in_absolute_terms_at_unit_input_scale():
    """A window of 1 makes dk exactly 0: float32 leaves ~1e-6 of rounding (accepted), a real error of 1e-4
    on that gradient still fails float32's tolerance."""
    zero = torch.zeros(2, 70, 64, dtype=torch.float64)
    tol = cuda_selfcheck.TOLERANCE[torch.float32]
    assert cuda_selfcheck._rel_err(zero + 1.2e-6, zero) <= tol
    assert cuda_selfcheck._rel_err(zero + 1e-4, zero) > tol
    big = torch.full((3,), 5.0, dtype=torch.float64)
    assert cuda_selfcheck._rel_err(big * (1 + 2e-4), big) > tol
