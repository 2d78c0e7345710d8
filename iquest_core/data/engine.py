"""Where data jobs run: the same per-shard function on a local process pool (default) or on a Ray
cluster. Results come back in shard order whatever the engine and worker count, so a job whose shard
function is deterministic gives identical output everywhere.

    results = map_shards(fn, shards, engine="local", workers=None, desc="fim")

fn must be a picklable top-level function taking one shard and returning a picklable result. Local
workers run torch with one intra-op thread each (so kernels run inline: no OpenMP region in a forked
child, and no oversubscription). The driver's objects are frozen out of the garbage collector while its
workers are forked (`gc.freeze`): a full collection in a worker would otherwise write to every inherited
object and turn the driver's shared pages into private copies. Ray tasks take one CPU each (Ray then gives them one OpenMP thread). The Ray engine
joins the running Ray session, else connects to `address` (None: a new local Ray instance).

Jobs write their outputs with `iquest_core.atomic_io.write_jsonl` (temporary file, then rename: a failed job leaves no
truncated output).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")
ENGINES = ("local", "ray")


def add_engine_arguments(parser: Any) -> None:
    """--engine, --workers and --address for an argparse parser."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local process pool (default) or a Ray cluster")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: all cores)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")


def map_shards(fn: Callable[[S], R], shards: Sequence[S], *, engine: str = "local", workers: int | None = None,
               address: str | None = None, desc: str | None = None,
               on_result: Callable[[R, tqdm], None] | None = None) -> list[R]:
    """[fn(shard) for shard in shards], computed by `engine`, with a progress bar over shards (none when
    desc is None); on_result(result, bar) sees each result as it arrives (e.g. to set the bar's rates).
    An exception raised by fn propagates (on Ray: a RayTaskError that is also an instance of the original
    exception's type)."""
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    progress = tqdm(total=len(shards), desc=desc, unit="shard", disable=desc is None)

    def finished(result: R) -> R:
        if on_result is not None:
            on_result(result, progress)
        progress.update()
        return result

    try:
        if engine == "ray":
            return _map_ray(fn, shards, address, finished)
        workers = min(workers or os.cpu_count() or 1, max(len(shards), 1))
        if workers == 1:
            results = []
            for shard in shards:
                results.append(finished(fn(shard)))
            return results
        gc.freeze()
        try:
            with ProcessPoolExecutor(workers, initializer=_one_thread_per_worker) as pool:
                futures = [pool.submit(fn, shard) for shard in shards]
                results = []
                for future in futures:
                    results.append(finished(future.result()))
                return results
        finally:
            gc.unfreeze()
    finally:
        progress.close()


def _one_thread_per_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _apply(fn: Callable[[S], R], shard: S) -> R:
    return fn(shard)


def _map_ray(fn: Callable[[S], R], shards: Sequence[S], address: str | None,
             finished: Callable[[R], R]) -> list[R]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_apply)
    refs = [remote.remote(fn, shard) for shard in shards]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = finished(ray.get(ref))
    return results


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """items cut into consecutive shards of `size` (the last may be shorter)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size: expected an int >= 1, got {size!r}")
    return [items[i:i + size] for i in range(0, len(items), size)]


