"""Small recipes and multi-process launching for the trainer tests."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iquest_core.train.export import load_checkpoint_model
from iquest_core.train.recipe import load_recipe

# A few-thousand-parameter LoopCoder over a 300-token BPE, 4 rows of 64 tokens per step.
SMALL = ["seq_len=64", "batch_tokens=256", "steps=3", "checkpoint_every=0", "schedule.warmup_steps=1",
         "model.vocab_size=300", "model.hidden_size=32", "model.intermediate_size=64", "model.num_attention_heads=4",
         "model.num_key_value_heads=2", "model.head_dim=8", "model.loop_window_size=8", "optim.lr=1e-2"]


def small_recipe(*overrides: str) -> dict:
    return load_recipe("tiny", [*SMALL, *overrides])


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def losses(output: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(reference: Path, output: Path, tol: float = 1e-5, steps: int = 3) -> None:
    """Both runs logged `steps` losses and saved step-`steps` weights, equal within `tol` relative."""
    a, b = losses(reference), losses(output)
    assert len(a) == len(b) == steps
    assert max(abs(x - y) / abs(x) for x, y in zip(a, b)) <= tol, (a, b)
    ref = load_checkpoint_model(reference / "checkpoints" / f"step-{steps}").state_dict()
    got = load_checkpoint_model(output / "checkpoints" / f"step-{steps}").state_dict()
    assert ref.keys() == got.keys()
    for name in ref:
        err = ((got[name] - ref[name]).abs().max() / ref[name].abs().max()).item()
        assert err <= tol, (name, err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, timeout: float, fn, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout))
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def spawn(world: int, fn, *args, timeout: float = 120) -> None:
    """Run fn(*args) on `world` gloo ranks (fn must be a module-level function); a collective that
    waits longer than `timeout` seconds (a rank left behind: a hang) raises on the ranks waiting."""
    mp.spawn(_worker, args=(world, _free_port(), timeout, fn, args), nprocs=world, join=True)
