"""Kernel self-test of this machine: `python -m iquest_core.ops.selftest`.

Runs the attention kernels (`loop_attention`, `attention_with_lse`), forward and backward, on small
random problems against the float64 reference of `iquest_core.ops.reference`, twice each to check
bitwise determinism, and prints one table row per case. On the CPU it tests float32 and bfloat16 at
head dims 64 and 128; on every visible CUDA device it tests the CUDA kernels (bfloat16 and float16, head
dims 64 and 128). On a machine without CUDA it says so: the CUDA kernels are then untested here.
Exit status 0 when every case passed, 1 otherwise.
"""

from __future__ import annotations

import sys

import torch

from iquest_core.command_line import CommandParser
from iquest_core.ops import attention_with_lse, cuda_selfcheck, loop_attention
from iquest_core.ops.cuda_selfcheck import OPS, CaseResult

CPU_DTYPES = (torch.float32, torch.bfloat16)
KERNELS = {"loop_attention": loop_attention, "attention_with_lse": attention_with_lse}


def _cpu_results() -> list[CaseResult]:
    results = []
    for op in OPS:
        for dtype in CPU_DTYPES:
            for head_dim in cuda_selfcheck.CUDA_HEAD_DIMS:
                results += cuda_selfcheck.run_cases(op, KERNELS[op], "cpu", dtype, head_dim)
    return results


def _table(results: list[CaseResult]) -> str:
    header = f"{'op':<19} {'device':<7} {'dtype':<9} {'D':>4}  {'case':<64} {'worst err':>10} {'tol':>7}  {'det':<4} status"
    lines = [header, "-" * len(header)]
    for r in results:
        worst = "-" if r.exception else f"{r.worst:.2e}"
        lines.append(f"{r.op:<19} {r.device:<7} {str(r.dtype).removeprefix('torch.'):<9} {r.head_dim:>4}  "
                     f"{r.case:<64} {worst:>10} {r.tolerance:>7.0e}  {'yes' if r.deterministic else 'NO':<4} "
                     f"{'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="iquest selftest", description=__doc__.splitlines()[0])
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU kernels")
    args = parser.parse_args(argv)

    results: list[CaseResult] = []
    if not args.no_cpu:
        results += _cpu_results()
    notes = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            notes.append(f"cuda:{index}: {torch.cuda.get_device_name(index)}")
            results += cuda_selfcheck.check_cuda_kernels(KERNELS, torch.device("cuda", index))
    else:
        notes.append("CUDA: not available on this machine (no device or a CPU-only torch): "
                     "the CUDA kernels were NOT tested here")

    print(f"iquest_core kernel self-test, torch {torch.__version__}")
    for note in notes:
        print(note)
    print(_table(results))
    failures = [r for r in results if not r.passed]
    for r in failures:
        print("FAIL:", r.describe())
    print(f"{len(results) - len(failures)}/{len(results)} cases passed")
    if not results:
        print("nothing was tested (no CUDA device and --no-cpu)")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
