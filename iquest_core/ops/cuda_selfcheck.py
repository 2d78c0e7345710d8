"""Run-time self-check of the CUDA attention kernels.

The CUDA kernels of `loop_attention` and `attention_with_lse` are not trusted blindly: the first CUDA
call of an op per process, device, dtype and head_dim runs the kernel, forward and backward, on a small
random problem (odd lengths, partial tiles, GQA, a window, packed documents for loop attention) and
compares it with the float64 reference of `iquest_core.ops.reference` computed on the CPU, and runs it
twice to check that it is bitwise deterministic. A mismatch raises `CudaKernelSelfCheckError` (a
RuntimeError) naming the op, the device, the case and the error, instead of training on wrong numbers.

Under torch.compile the check is skipped while tracing (it would otherwise be traced into the graph),
and so is it during CUDA graph capture; it runs at the first eager call, or explicitly through
`check_cuda_kernels(device)` or `python -m iquest_core.train.selftest`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from iquest_core.ops.reference import attention_with_lse_reference, loop_attention_reference

# Largest accepted max|kernel - float64| / max|float64| per element dtype. Half-precision inputs and
# outputs alone give errors of a few units of the dtype's rounding (bf16: 2^-8); a wrong kernel gives O(1).
TOLERANCE = {torch.bfloat16: 5e-2, torch.float16: 1e-2, torch.float32: 1e-4}
CUDA_DTYPES = (torch.bfloat16, torch.float16)
CUDA_HEAD_DIMS = (64, 128)


class CudaKernelSelfCheckError(RuntimeError):
    """The CUDA kernel disagreed with the float64 reference (or was not deterministic)."""


@dataclass
class CaseResult:
    op: str
    case: str
    device: str
    dtype: torch.dtype
    head_dim: int
    errors: dict[str, float] = field(default_factory=dict)
    deterministic: bool = True
    tolerance: float = 0.0
    exception: str | None = None

    @property
    def worst(self) -> float:
        return max(self.errors.values(), default=float("nan"))

    @property
    def passed(self) -> bool:
        return self.exception is None and self.deterministic and bool(self.errors) and self.worst <= self.tolerance

    def describe(self) -> str:
        if self.exception is not None:
            return f"{self.op} [{self.case}] on {self.device}, {self.dtype}, D={self.head_dim}: raised {self.exception}"
        bad = {k: f"{v:.3g}" for k, v in self.errors.items() if not v <= self.tolerance}
        parts = [f"{self.op} [{self.case}] on {self.device}, {self.dtype}, D={self.head_dim}:"]
        if bad:
            parts.append(f"relative error above {self.tolerance:g} in {bad}")
        if not self.deterministic:
            parts.append("two identical calls gave different bits")
        return " ".join(parts)


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().cpu().double(), expected.detach().double()
    finite = torch.isfinite(expected)
    if not torch.equal(finite, torch.isfinite(actual)) or not torch.equal(actual[~finite], expected[~finite]):
        return float("inf")  # -inf lse rows must match exactly
    if not finite.any():
        return 0.0
    diff = (actual[finite] - expected[finite]).abs().max()
    return (diff / expected[finite].abs().max().clamp_min(1e-6)).item()


def _leaves(tensors, device, dtype):
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in tensors]


def _loop_case(device: torch.device, dtype: torch.dtype, head_dim: int, packed: bool, seed: int) -> CaseResult:
    case = "packed [70, 1, 129], H=4 Hkv=1, W=40" if packed else "B=2 L=150, H=4 Hkv=2, W=24"
    result = CaseResult("loop_attention", case, str(device), dtype, head_dim, tolerance=TOLERANCE[dtype])
    gen = torch.Generator().manual_seed(seed)
    heads, kv_heads, window = (4, 1, 40) if packed else (4, 2, 24)
    lead = (200,) if packed else (2, 150)
    cu_seqlens = torch.tensor([0, 70, 71, 200], dtype=torch.int32) if packed else None
    max_seqlen = 129 if packed else None

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    inputs = [randn(*lead, heads, head_dim)] + [randn(*lead, kv_heads, head_dim) for _ in range(4)]
    inputs += [randn(heads, head_dim) * head_dim**-0.5, randn(heads)]
    grad_out = randn(*lead, heads, head_dim)
    scale = head_dim**-0.5

    ref_leaves = [t.clone().requires_grad_() for t in inputs]
    expected = loop_attention_reference(*ref_leaves, window=window, scale=scale, cu_seqlens=cu_seqlens)
    expected.backward(grad_out)

    def run():
        leaves = _leaves(inputs, device, dtype)
        cu = cu_seqlens.to(device) if packed else None
        out = torch.ops.iquest.loop_attention.default(*leaves, window, scale, cu, max_seqlen)[0]
        out.backward(grad_out.to(device=device, dtype=dtype))
        return [out.detach()] + [leaf.grad for leaf in leaves]

    try:
        first, second = run(), run()
    except Exception as error:  # noqa: BLE001  (reported, then raised by the caller)
        result.exception = f"{type(error).__name__}: {error}"
        return result
    names = ("out", "dq", "dk_global", "dv_global", "dk_local", "dv_local", "d_gate_weight", "d_gate_bias")
    for name, actual, ref in zip(names, first, [expected] + [leaf.grad for leaf in ref_leaves]):
        result.errors[name] = _rel_err(actual, ref)
    result.deterministic = all(torch.equal(a, b) for a, b in zip(first, second))
    return result


def _attention_case(device: torch.device, dtype: torch.dtype, head_dim: int, window: int | None,
                    seed: int) -> CaseResult:
    case = f"Lq=100 Lk=170, q_start=120 k_start=40, H=4 Hkv=2, window={window}"
    result = CaseResult("attention_with_lse", case, str(device), dtype, head_dim, tolerance=TOLERANCE[dtype])
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 100, 4, head_dim, generator=gen, dtype=torch.float64)
    k = torch.randn(2, 170, 2, head_dim, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 170, 2, head_dim, generator=gen, dtype=torch.float64)
    grad_out = torch.randn(2, 100, 4, head_dim, generator=gen, dtype=torch.float64)
    grad_lse = torch.randn(2, 4, 100, generator=gen, dtype=torch.float64)
    kwargs = dict(q_start=120, k_start=40, window=window, scale=head_dim**-0.5)

    ref_leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out64, lse64 = attention_with_lse_reference(*ref_leaves, **kwargs)
    (out64 * grad_out).sum().add((lse64 * grad_lse).sum()).backward()

    def run():
        leaves = _leaves((q, k, v), device, dtype)
        out, lse = torch.ops.iquest.attention_with_lse.default(*leaves, 120, 40, window or 0, head_dim**-0.5)
        loss = (out.float() * grad_out.to(device).float()).sum() + (lse * grad_lse.to(device).float()).sum()
        loss.backward()
        return [out.detach(), lse.detach()] + [leaf.grad for leaf in leaves]

    try:
        first, second = run(), run()
    except Exception as error:  # noqa: BLE001
        result.exception = f"{type(error).__name__}: {error}"
        return result
    expected = [out64, lse64] + [leaf.grad for leaf in ref_leaves]
    for name, actual, ref in zip(("out", "lse", "dq", "dk", "dv"), first, expected):
        result.errors[name] = _rel_err(actual, ref)
    result.deterministic = all(torch.equal(a, b) for a, b in zip(first, second))
    return result


def run_cases(op: str, device: torch.device | str, dtype: torch.dtype, head_dim: int) -> list[CaseResult]:
    """All self-check cases of one op for one (device, dtype, head_dim)."""
    device = torch.device(device)
    with torch.inference_mode(False), torch.enable_grad():
        if op == "loop_attention":
            return [_loop_case(device, dtype, head_dim, packed=False, seed=1),
                    _loop_case(device, dtype, head_dim, packed=True, seed=2)]
        if op == "attention_with_lse":
            return [_attention_case(device, dtype, head_dim, window=None, seed=3),
                    _attention_case(device, dtype, head_dim, window=50, seed=4)]
    raise ValueError(f"op: expected 'loop_attention' or 'attention_with_lse', got {op!r}")


_checked: set[tuple] = set()
_lock = threading.Lock()


def check_once(op: str, q: torch.Tensor) -> None:
    """Self-check the CUDA kernel of `op` for q's device, dtype and head_dim, once per process.

    Does nothing for configurations the CUDA kernels do not take (they raise ValueError themselves),
    while torch.compile traces, or while a CUDA graph is being captured (the check synchronises).
    Raises CudaKernelSelfCheckError on a mismatch, at every call.
    """
    if torch.compiler.is_compiling() or q.dtype not in CUDA_DTYPES or q.shape[-1] not in CUDA_HEAD_DIMS:
        return
    if torch.cuda.is_current_stream_capturing():
        return
    index = q.device.index if q.device.index is not None else torch.cuda.current_device()
    key = (op, index, q.dtype, q.shape[-1])
    if key in _checked:
        return
    with _lock:
        if key in _checked:
            return
        failures = [r for r in run_cases(op, torch.device("cuda", index), q.dtype, q.shape[-1]) if not r.passed]
        if failures:
            details = "\n  ".join(r.describe() for r in failures)
            raise CudaKernelSelfCheckError(
                f"iquest_core: the CUDA kernel of {op} disagrees with the float64 reference on "
                f"{torch.cuda.get_device_name(index)} (cuda:{index}); refusing to use it.\n  {details}\n"
                "Run `python -m iquest_core.train.selftest` for the full table, and report it with the GPU model.")
        _checked.add(key)


def check_cuda_kernels(device: torch.device | str = "cuda") -> list[CaseResult]:
    """Every self-check case of both ops for every supported dtype and head_dim on `device`."""
    return [r for op in ("loop_attention", "attention_with_lse") for dtype in CUDA_DTYPES
            for head_dim in CUDA_HEAD_DIMS for r in run_cases(op, device, dtype, head_dim)]
