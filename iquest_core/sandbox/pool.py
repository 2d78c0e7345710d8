"""`run_many`: many sandboxed runs in parallel. Each run is its own process tree, so threads that wait on
them are enough; a run that hangs is bounded by its own wall-clock limit, never the pool."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from iquest_core.sandbox.execute import Verdict, run_tests


def run_many(jobs: Iterable[tuple[str, str]], *, workers: int | None = None, timeout_s: float = 10.0,
             memory_mb: int = 1024, language: str = "python") -> list[Verdict]:
    """Verdicts of run_tests(program, tests, ...) for each (program, tests) pair, in input order, with at
    most `workers` (default: the CPU count) sandboxes at a time."""
    jobs = list(jobs)
    for i, job in enumerate(jobs):
        if not (isinstance(job, (tuple, list)) and len(job) == 2 and all(isinstance(part, str) for part in job)):
            raise ValueError(f"jobs: expected (program, tests) pairs of str, got {job!r:.80} at index {i}")
    workers = os.cpu_count() or 1 if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], timeout_s=timeout_s, memory_mb=memory_mb,
                                                   language=language), jobs))
