"""Where data jobs run: the same per-shard function on a local process pool (default) or on a Ray
cluster. Results come back in shard order whatever the engine and worker count, so a job whose shard
function is deterministic gives identical output everywhere.

    results = map_shards(fn, shards, engine="local", workers=None, desc="fim")

fn must be a picklable top-level function taking one shard and returning a picklable result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

S = TypeVar("S")
R = TypeVar("R")
ENGINES = ("local", "ray")


def add_engine_arguments(parser: Any) -> None:
    """--engine, --workers and --address for an argparse parser."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local process pool (default) or a Ray cluster")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: all cores)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")


def map_shards(fn: Callable[[S], R], shards: Sequence[S], *, engine: str = "local", workers: int | None = None,
               address: str | None = None, desc: str | None = None) -> list[R]:
    """[fn(shard) for shard in shards], computed by `engine`, with a progress bar over shards."""
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    progress = tqdm(total=len(shards), desc=desc, unit="shard", disable=desc is None)
    try:
        if engine == "ray":
            return _map_ray(fn, shards, address, progress)
        workers = min(workers or os.cpu_count() or 1, max(len(shards), 1))
        if workers == 1:
            results = []
            for shard in shards:
                results.append(fn(shard))
                progress.update()
            return results
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(fn, shard) for shard in shards]
            results = []
            for future in futures:
                results.append(future.result())
                progress.update()
            return results
    finally:
        progress.close()


def _map_ray(fn: Callable[[S], R], shards: Sequence[S], address: str | None, progress: tqdm) -> list[R]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(fn)
    refs = [remote.remote(shard) for shard in shards]
    results = []
    for ref in refs:
        results.append(ray.get(ref))
        progress.update()
    return results
