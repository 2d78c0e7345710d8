"""Runs a function on several gloo CPU ranks (spawned processes, one thread each): `spawn` for its side
effects, `run_on_ranks` for what each rank returns. A collective that waits longer than `timeout`
seconds (a rank left behind: a hang) raises on the ranks waiting instead of stalling the suite."""

from __future__ import annotations

import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, timeout: float, results, fn, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout))
    try:
        result = fn(*args)
        if results is not None:
            results[rank] = result
    finally:
        dist.destroy_process_group()


def spawn(world: int, fn, *args, timeout: float = 120) -> None:
    """fn(*args) on `world` gloo ranks (fn module-level)."""
    mp.spawn(_worker, args=(world, _free_port(), timeout, None, fn, args), nprocs=world, join=True)


def run_on_ranks(world: int, fn, *args, timeout: float = 120) -> dict:
    """{rank: fn(*args)} over `world` gloo ranks (fn module-level, its result picklable)."""
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(world, _free_port(), timeout, results, fn, args), nprocs=world, join=True)
    assert sorted(results.keys()) == list(range(world))
    return dict(results)
