"""Runs a function on several gloo CPU ranks (spawned processes, one thread each) and collects what each
rank returns."""

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


def _worker(rank, world_size, port, results, fn, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=120))  # a rank left alone in a collective fails, not hangs
    try:
        results[rank] = fn(*args)
    finally:
        dist.destroy_process_group()


def run_on_ranks(world_size: int, fn, *args) -> dict:
    """{rank: fn(*args)} over a gloo group of world_size ranks (fn module-level, its result picklable)."""
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(world_size, _free_port(), results, fn, args), nprocs=world_size, join=True)
    assert sorted(results.keys()) == list(range(world_size))
    return dict(results)
