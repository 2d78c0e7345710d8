"""Run-time self-check of the CUDA attention kernels.

The CUDA kernels of `loop_attention` and `attention_with_lse` are not trusted blindly. `check_once(op, q)`
is the entry point: the ops' CUDA implementation (cuda_dispatch) calls it with the query tensor before
every kernel call, forward and backward, so eager calls, the ring's blocks and torch.compile graphs all
run it. The first call per process, op, device, dtype and head_dim runs the kernel, forward and
backward, on the cases of `run_cases` and compares it with a reference computed by
`iquest_core.ops.reference` from the same (rounded) inputs, and runs it twice to check that it is
bitwise deterministic. A mismatch raises `CudaKernelSelfCheckError` naming the op, the device, the case
and the error, at this and every later call (each runs the check again). Skipped while a CUDA graph is
being captured (the check synchronises; capture after a first eager call) and while a check runs: its
own kernel calls (the backward ones on autograd's device threads) and, in that window, calls from other
threads.

Cases: odd lengths and partial tiles, GQA and Hkv = H, windows 1 and >= 127 (the full-tile path), L < 64
and L = 1, packed documents for both ops, rows that see no key (out exactly 0, lse -inf, no NaN anywhere),
and on CUDA a production-like shape (H=40, Hkv=8, W=64, L=2048) against a float32 reference, forward
only. Outputs are judged per row (max |kernel - reference| over the row / max |reference| of the row), the
lse in absolute terms at a float32-accumulation tolerance, gradients relative to their largest entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from iquest_core.ops.reference import attention_with_lse_reference, loop_attention_reference

# Gradients: largest accepted max|kernel - reference| / max|reference| (half-precision inputs, outputs
# and intermediate rounding give a few units of the dtype's precision; a wrong kernel gives O(1)).
TOLERANCE = {torch.bfloat16: 5e-2, torch.float16: 1e-2, torch.float32: 1e-4}
# Outputs, per row: the output's own rounding (bf16 2^-9, fp16 2^-12) and probabilities rounded to the
# input dtype before the second product.
ROW_TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 4e-3, torch.float32: 1e-5}
# lse is float32 in every dtype (inputs are rounded alike for the reference): float32 accumulation error.
LSE_TOLERANCE = 1e-3
CUDA_DTYPES = (torch.bfloat16, torch.float16)
CUDA_HEAD_DIMS = (64, 128)
OPS = ("loop_attention", "attention_with_lse")


class CudaKernelSelfCheckError(RuntimeError):
    """The CUDA kernel disagreed with the reference (or was not deterministic)."""


@dataclass
class CaseResult:
    op: str
    case: str
    device: str
    dtype: torch.dtype
    head_dim: int
    errors: dict[str, float] = field(default_factory=dict)
    tolerances: dict[str, float] = field(default_factory=dict)
    deterministic: bool = True
    exception: str | None = None

    def _worst_key(self) -> str | None:
        return max(self.errors, key=lambda k: self.errors[k] / self.tolerances[k], default=None)

    @property
    def worst(self) -> float:
        """The error closest to (or furthest over) its tolerance."""
        key = self._worst_key()
        return float("nan") if key is None else self.errors[key]

    @property
    def tolerance(self) -> float:
        key = self._worst_key()
        return float("nan") if key is None else self.tolerances[key]

    @property
    def passed(self) -> bool:
        return (self.exception is None and self.deterministic and bool(self.errors)
                and all(self.errors[k] <= self.tolerances[k] for k in self.errors))

    def describe(self) -> str:
        where = f"{self.op} [{self.case}] on {self.device}, {self.dtype}, D={self.head_dim}:"
        if self.exception is not None:
            return f"{where} raised {self.exception}"
        bad = {k: f"{v:.3g} > {self.tolerances[k]:g}" for k, v in self.errors.items() if not v <= self.tolerances[k]}
        parts = [where]
        if bad:
            parts.append(f"error above tolerance in {bad}")
        if not self.deterministic:
            parts.append("two identical calls gave different bits")
        return " ".join(parts)


# -- comparisons ----------------------------------------------------------------------------------------


def _nonfinite_mismatch(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    """True unless actual is non-finite exactly where expected is, with the same values there (-inf lse
    of rows that see no key); a NaN anywhere else is a mismatch."""
    finite = torch.isfinite(expected)
    return not torch.equal(finite, torch.isfinite(actual)) or not torch.equal(actual[~finite], expected[~finite])


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max(max |expected|, 0.1) over the finite entries (inf on a non-finite
    mismatch). The floor: the cases' inputs are of unit scale, and some gradients are exactly 0 in exact
    arithmetic (a window of 1 or a single key: the softmax is constant), where float32 rounding of the
    D-term sums that cancel leaves up to ~1e-6 (so an absolute error above 1e-5 still fails float32)."""
    actual, expected = actual.detach().cpu().double(), expected.detach().cpu().double()
    if _nonfinite_mismatch(actual, expected):
        return float("inf")
    finite = torch.isfinite(expected)
    if not finite.any():
        return 0.0
    diff = (actual[finite] - expected[finite]).abs().max()
    return (diff / expected[finite].abs().max().clamp_min(0.1)).item()


def _row_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Worst per-row relative error of (..., D) outputs: max over the row of |actual - expected| over the
    row's largest |expected| (at least 1e-3 of the largest overall). Rows whose reference is exactly 0
    (no visible key) must be exactly 0."""
    actual, expected = actual.detach().double().to(expected.device), expected.detach().double()
    if _nonfinite_mismatch(actual, expected):
        return float("inf")
    diff = (actual - expected).abs().amax(-1)
    scale = expected.abs().amax(-1)
    empty = scale == 0
    if bool((diff[empty] != 0).any()):
        return float("inf")
    floor = scale.max().clamp_min(1e-30) * 1e-3
    return (diff[~empty] / scale[~empty].clamp_min(floor)).max().item() if (~empty).any() else 0.0


def _abs_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().double().to(expected.device), expected.detach().double()
    if _nonfinite_mismatch(actual, expected):
        return float("inf")
    finite = torch.isfinite(expected)
    return (actual[finite] - expected[finite]).abs().max().item() if finite.any() else 0.0


def _leaves(tensors, device, dtype):
    return [t.detach().to(device=device, dtype=dtype).requires_grad_() for t in tensors]


# -- cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """lengths: (B, L) for a batch, or document lengths for a packed row. For attention_with_lse, Lq =
    Lk = L unless k_len is given, with positions q_start + i and k_start + j."""

    name: str
    lengths: tuple[int, ...]
    heads: int
    kv_heads: int
    window: int | None
    packed: bool = False
    q_start: int = 0
    k_start: int = 0
    k_len: int | None = None
    production: bool = False


LOOP_CASES = (
    Case("B=2 L=150, H=4 Hkv=2, W=24", (2, 150), 4, 2, 24),
    Case("packed [70, 1, 129], H=4 Hkv=1, W=40", (70, 1, 129), 4, 1, 40, packed=True),
    Case("B=1 L=70, H=Hkv=2, W=1", (1, 70), 2, 2, 1),
    Case("B=1 L=200, H=4 Hkv=1, W=130 (full tiles)", (1, 200), 4, 1, 130),
    Case("B=2 L=37, H=4 Hkv=2, W=64 (L < 64)", (2, 37), 4, 2, 64),
    Case("B=3 L=1, H=2 Hkv=1, W=64", (3, 1), 2, 1, 64),
)
ATTENTION_CASES = (
    Case("Lq=100 Lk=170, q_start=120 k_start=40, H=4 Hkv=2", (2, 100), 4, 2, None, q_start=120, k_start=40, k_len=170),
    Case("Lq=100 Lk=170, q_start=120 k_start=40, H=4 Hkv=2, W=50", (2, 100), 4, 2, 50, q_start=120, k_start=40,
         k_len=170),
    Case("Lq=90 Lk=60, q_start=0 k_start=30: rows with no key", (1, 90), 2, 1, None, k_start=30, k_len=60),
    Case("packed [50, 1, 89], H=4 Hkv=2, W=20", (50, 1, 89), 4, 2, 20, packed=True),
    Case("B=1 L=80, H=Hkv=2, W=1", (1, 80), 2, 2, 1),
    Case("B=1 L=190, H=4 Hkv=1, W=127 (full tiles)", (1, 190), 4, 1, 127),
    Case("B=2 L=45, H=4 Hkv=2 (L < 64)", (2, 45), 4, 2, None),
    Case("B=2 L=1, H=2 Hkv=2", (2, 1), 2, 2, None),
)
PRODUCTION_CASES = {
    "loop_attention": Case("production-like B=1 L=2048, H=40 Hkv=8, W=64", (1, 2048), 40, 8, 64, production=True),
    "attention_with_lse": Case("production-like B=1 L=2048, H=40 Hkv=8", (1, 2048), 40, 8, None, production=True),
}


def _inputs(case: Case, head_dim: int, dtype: torch.dtype, seed: int, count: int, kv_count: int):
    """float64 inputs already rounded to dtype (the reference sees exactly what the kernel sees)."""
    gen = torch.Generator().manual_seed(seed)
    lead = (sum(case.lengths),) if case.packed else case.lengths
    k_lead = lead if case.k_len is None else (lead[0], case.k_len)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype).double()

    q = [randn(*lead, case.heads, head_dim) for _ in range(count)]
    kv = [randn(*k_lead, case.kv_heads, head_dim) for _ in range(kv_count)]
    cu = None
    if case.packed:
        cu = torch.tensor([0, *torch.tensor(case.lengths).cumsum(0).tolist()], dtype=torch.int32)
    return q, kv, randn(*lead, case.heads, head_dim), gen, cu


def _loop_case(kernel, case: Case, device, dtype, head_dim, seed) -> CaseResult:
    result = CaseResult("loop_attention", case.name, str(device), dtype, head_dim)
    (q,), kvs, grad_out, gen, cu = _inputs(case, head_dim, dtype, seed, 1, 4)
    gate_w = (torch.randn(case.heads, head_dim, generator=gen, dtype=torch.float64) * head_dim**-0.5).to(dtype).double()
    gate_b = torch.randn(case.heads, generator=gen, dtype=torch.float64).to(dtype).double()
    inputs = [q, *kvs, gate_w, gate_b]
    scale, max_seqlen = head_dim**-0.5, max(case.lengths) if case.packed else None
    ref_device, ref_dtype = (device, torch.float32) if case.production else ("cpu", torch.float64)
    ref_leaves = [t.to(ref_device, ref_dtype).clone().requires_grad_(not case.production) for t in inputs]
    with torch.no_grad() if case.production else torch.enable_grad():
        expected = loop_attention_reference(*ref_leaves, window=case.window, scale=scale, cu_seqlens=cu)
    if not case.production:
        expected.backward(grad_out)

    def run():
        leaves = _leaves(inputs, device, dtype)
        out = kernel(*leaves, window=case.window, scale=scale, cu_seqlens=None if cu is None else cu.to(device),
                     max_seqlen=max_seqlen)
        if case.production:
            return [out.detach()]
        out.backward(grad_out.to(device=device, dtype=dtype))
        return [out.detach()] + [leaf.grad for leaf in leaves]

    names = ("dq", "dk_global", "dv_global", "dk_local", "dv_local", "d_gate_weight", "d_gate_bias")
    references = [] if case.production else [leaf.grad for leaf in ref_leaves]
    return _judge(result, run, expected, None, list(zip(names, references)))


def _attention_case(kernel, case: Case, device, dtype, head_dim, seed) -> CaseResult:
    result = CaseResult("attention_with_lse", case.name, str(device), dtype, head_dim)
    (q,), (k, v), grad_out, gen, cu = _inputs(case, head_dim, dtype, seed, 1, 2)
    lse_shape = (case.heads, q.shape[0]) if case.packed else (q.shape[0], case.heads, q.shape[1])
    grad_lse = torch.randn(*lse_shape, generator=gen, dtype=torch.float64)
    kwargs = dict(q_start=case.q_start, k_start=case.k_start, window=case.window, scale=head_dim**-0.5)
    ref_device, ref_dtype = (device, torch.float32) if case.production else ("cpu", torch.float64)
    ref_leaves = [t.to(ref_device, ref_dtype).clone().requires_grad_(not case.production) for t in (q, k, v)]
    with torch.no_grad() if case.production else torch.enable_grad():
        out_ref, lse_ref = _attention_reference(*ref_leaves, cu=cu, chunk=256 if case.production else None, **kwargs)
    if not case.production:
        finite = torch.isfinite(lse_ref)
        ((out_ref * grad_out).sum() + (lse_ref[finite] * grad_lse[finite]).sum()).backward()

    def run():
        leaves = _leaves((q, k, v), device, dtype)
        out, lse = kernel(*leaves, cu_seqlens=None if cu is None else cu.to(device), **kwargs)
        if case.production:
            return [out.detach(), lse.detach()]
        visible = torch.isfinite(lse)
        grad_lse_here = grad_lse.to(device).float()
        loss = (out.float() * grad_out.to(device).float()).sum() + (lse[visible] * grad_lse_here[visible]).sum()
        loss.backward()
        return [out.detach(), lse.detach()] + [leaf.grad for leaf in leaves]

    references = [] if case.production else list(zip(("dq", "dk", "dv"), (leaf.grad for leaf in ref_leaves)))
    return _judge(result, run, out_ref, lse_ref, references)


def _attention_reference(q, k, v, *, cu, chunk, q_start, k_start, window, scale):
    """attention_with_lse_reference per document (packed) or per block of `chunk` queries."""
    if cu is not None:
        bounds = cu.tolist()
        parts = [attention_with_lse_reference(q[None, a:b], k[None, a:b], v[None, a:b], q_start=q_start,
                                              k_start=k_start, window=window, scale=scale)
                 for a, b in zip(bounds[:-1], bounds[1:])]
        return torch.cat([o[0] for o, _ in parts]), torch.cat([lse[0] for _, lse in parts], dim=-1)
    if chunk is None:
        return attention_with_lse_reference(q, k, v, q_start=q_start, k_start=k_start, window=window, scale=scale)
    parts = [attention_with_lse_reference(q[:, i:i + chunk], k, v, q_start=q_start + i, k_start=k_start,
                                          window=window, scale=scale) for i in range(0, q.shape[1], chunk)]
    return torch.cat([o for o, _ in parts], dim=1), torch.cat([lse for _, lse in parts], dim=-1)


def _judge(result: CaseResult, run, out_ref, lse_ref, grad_refs) -> CaseResult:
    try:
        first, second = run(), run()
    except Exception as error:  # noqa: BLE001  (reported, then raised by the caller)
        result.exception = f"{type(error).__name__}: {error}"
        return result
    result.errors["out (per row)"] = _row_err(first[0], out_ref)
    result.tolerances["out (per row)"] = ROW_TOLERANCE[result.dtype]
    rest = first[1:]
    if lse_ref is not None:
        result.errors["lse (abs)"] = _abs_err(rest[0], lse_ref)
        result.tolerances["lse (abs)"] = LSE_TOLERANCE
        rest = rest[1:]
    for (name, ref), actual in zip(grad_refs, rest):
        result.errors[name] = _rel_err(actual, ref)
        result.tolerances[name] = TOLERANCE[result.dtype]
    result.deterministic = all(torch.equal(a, b) for a, b in zip(first, second))
    return result


def run_cases(op: str, kernel: Callable, device: torch.device | str, dtype: torch.dtype, head_dim: int, *,
              production: bool | None = None) -> list[CaseResult]:
    """All self-check cases of op `op`, computed by `kernel` (the public op, or a stand-in with its
    signature), for one (device, dtype, head_dim); the production-like case too when `production`
    (default: on CUDA devices only)."""
    if op not in OPS:
        raise ValueError(f"op: expected one of {OPS}, got {op!r}")
    device = torch.device(device)
    cases = list(LOOP_CASES if op == "loop_attention" else ATTENTION_CASES)
    if production if production is not None else device.type == "cuda":
        cases.append(PRODUCTION_CASES[op])
    return [run_case(op, kernel, case, device, dtype, head_dim, seed) for seed, case in enumerate(cases, start=1)]


def run_case(op: str, kernel: Callable, case: Case, device: torch.device | str, dtype: torch.dtype, head_dim: int,
             seed: int = 0) -> CaseResult:
    """One case of `op` computed by `kernel` (a Case of LOOP_CASES / ATTENTION_CASES / PRODUCTION_CASES) with
    inputs drawn from `seed`."""
    run = _loop_case if op == "loop_attention" else _attention_case
    with torch.inference_mode(False), torch.enable_grad(), _inside_check():
        return run(kernel, case, torch.device(device), dtype, head_dim, seed)


# -- the entry point ------------------------------------------------------------------------------------

_checked: set[tuple] = set()
_lock = threading.RLock()
_active_checks = 0  # process-wide: autograd runs a check's backward kernels on its own threads


class _inside_check:
    def __enter__(self):
        global _active_checks
        _active_checks += 1

    def __exit__(self, *exc):
        global _active_checks
        _active_checks -= 1


def check_once(op: str, q: torch.Tensor, kernel: Callable) -> None:
    """Self-checks the CUDA kernel of `op` for q's device, dtype and head_dim, once per process; the op's
    CUDA implementation calls it before the kernel, passing the public op as `kernel` (this module does
    not import the ops it checks).

    Does nothing for configurations the CUDA kernels do not take (they raise ValueError themselves),
    while a CUDA graph is being captured and while a check runs. Raises CudaKernelSelfCheckError on a
    mismatch (at every call, each running the check again)."""
    if _active_checks or q.dtype not in CUDA_DTYPES or q.shape[-1] not in CUDA_HEAD_DIMS \
            or torch.cuda.is_current_stream_capturing():
        return
    index = q.device.index if q.device.index is not None else torch.cuda.current_device()
    key = (op, index, q.dtype, q.shape[-1])
    if key in _checked:
        return
    with _lock:
        if key in _checked:
            return
        failures = [r for r in run_cases(op, kernel, torch.device("cuda", index), q.dtype, q.shape[-1]) if not r.passed]
        if failures:
            details = "\n  ".join(r.describe() for r in failures)
            raise CudaKernelSelfCheckError(
                f"iquest_core: the CUDA kernel of {op} disagrees with the reference on "
                f"{torch.cuda.get_device_name(index)} (cuda:{index}); refusing to use it.\n  {details}\n"
                "Run `iquest selftest` for the full table, and report it with the GPU model.")
        _checked.add(key)


def check_cuda_kernels(kernels: Mapping[str, Callable], device: torch.device | str = "cuda") -> list[CaseResult]:
    """Every self-check case of both ops (`kernels`: op name -> the public op) for every supported dtype and
    head_dim on `device`."""
    return [r for op in OPS for dtype in CUDA_DTYPES for head_dim in CUDA_HEAD_DIMS
            for r in run_cases(op, kernels[op], device, dtype, head_dim)]
