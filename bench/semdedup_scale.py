"""Time and memory of the semdedup step's global stage (k-means fit, assignment, pair search) by corpus size.

    python bench/semdedup_scale.py [N ...]      (default 10000 40000 160000)

Each size runs in a fresh process on synthetic unit embeddings (384 float32, 1% planted close copies)
written as shards of 10,000 documents: the step's `reduce` alone (the embedding, stage 1, is measured by
bench/quality_semdedup.py). Prints wall and CPU seconds, the process's peak RSS (and before the reduce:
the imports and the synthetic data), clusters and groups.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARD = 10_000


def one(n: int) -> None:
    from iquest_core.data.pipeline import ReduceContext
    from iquest_core.data.quality.semdedup import unit
    from iquest_core.data.steps import make_step
    from iquest_core.data.steps.near_dedup import save

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        shards = -(-n // SHARD)
        for s in range(shards):
            x = unit(rng.normal(size=(min(SHARD, n - s * SHARD), 384)))
            x[-len(x) // 100:] = unit(x[:len(x) // 100] + 0.003 * rng.normal(size=(len(x) // 100, 384)))
            save(state / f"shard-{s:05d}.embeddings.npy", x)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        before, cpu = time.perf_counter(), time.process_time()
        counts = make_step({"name": "semdedup"}).reduce(ReduceContext(state, shards, {}))
        wall, cpu = time.perf_counter() - before, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n:>9,} docs  {wall:7.1f} s wall  {cpu:7.1f} s CPU  peak RSS {peak:6.0f} MB (before the reduce {base:.0f} MB)  "
          f"clusters {counts['semdedup:clusters']:>5}  groups {counts['semdedup:duplicate_groups']:>6}", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(int(sys.argv[2]))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 40_000, 160_000]
    print(f"load {os.getloadavg()[0]:.1f}")
    for n in sizes:
        subprocess.run([sys.executable, __file__, "--one", str(n)], check=True)


if __name__ == "__main__":
    main()
