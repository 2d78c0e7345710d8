"""Candidate pairs per second of the dedup step's cluster stage (pair merge, exact-Jaccard verification,
union-find) on a corpus (not a test).

    python bench/dedup_cluster_speed.py --corpus /work/corpora/c025 --work /work/corpora/runs/cl025 --workers 2

Runs a dedup-only `iquest data run` job in this process (collect, exact and band stages on --workers
processes as usual) with the cluster stage timed: prints one JSON line with its candidate pairs, verified
merges, wall and CPU seconds (this process: the stage runs in the driver) and pairs per CPU second.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from iquest_core.data.pipeline import Pipeline, run_pipeline
from iquest_core.data.steps import make_step, near_dedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of part-*.jsonl (bench/data_corpus.py)")
    parser.add_argument("--work", type=Path, required=True, help="new folder for the job's output")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    inputs = sorted(str(p) for p in args.corpus.glob("part-*.jsonl"))
    timed = {}
    stage = near_dedup.cluster

    def cluster(*arguments, **options):
        load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
        root, candidates, verified = stage(*arguments, **options)
        timed.update(candidates=candidates, verified_merges=verified, wall_s=round(time.perf_counter() - wall, 2),
                     cpu_s=round(time.process_time() - cpu, 2), load_at_start=load, load_at_end=os.getloadavg()[0])
        return root, candidates, verified

    near_dedup.cluster = cluster
    pipeline = Pipeline(inputs=inputs, output=str(args.work), steps=[make_step({"name": "dedup"})],
                        output_format="jsonl")
    run_pipeline(pipeline, workers=args.workers, progress=False)
    print(json.dumps({"corpus": str(args.corpus), **timed,
                      "pairs_per_cpu_s": round(timed["candidates"] / max(timed["cpu_s"], 1e-9))}))


if __name__ == "__main__":
    main()
