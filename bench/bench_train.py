"""Trainer throughput on the CPU: one optimizer step of `Trainer.train_step` (loader, packing, forward,
backward, clipping, AdamW), in tokens/s = batch_tokens / median step time.

- "tiny": the `tiny` recipe as shipped (hidden 64, 2 layers x 2 loops, rows of 256, 2048 tokens a step);
  "small-cpu": hidden 256, 4 heads of 64, window 64, rows of 2048, 4096 tokens a step. Each with the
  fused gated loop attention (subject), the unfused reference path (two SDPA calls, the window branch
  under an L x L mask, + gate mix) and the banded unfused path (the window branch in O(L*W), the best
  unfused composition; ops.reference.loop_attention_banded).
- dp scaling: the small-cpu shape with the same global batch on dp=1 (one process, both cores) and dp=2
  (two gloo processes with FSDP2, one thread each); the step time of dp=2 includes the IPC that starts
  and waits for the step in both workers (~1 ms).

The machine is shared with other jobs: compare ratios from one run, not absolute times across runs.
"""

import multiprocessing as mp
import socket

import pytest
import torch

from iquest_core.train.recipe import load_recipe
from iquest_core.train.trainer import Trainer

SHAPES = {
    "tiny": ["steps=100000"],
    "small-cpu": ["steps=100000", "seq_len=2048", "batch_tokens=4096", "model.preset=small-cpu", "model.vocab_size=512",
                  "model.hidden_size=256", "model.intermediate_size=512", "model.head_dim=64",
                  "model.loop_window_size=64", "model.max_position_embeddings=4096"],
}
IMPLS = {"fused": "fused", "unfused": "reference", "unfused_banded": "banded"}


def _tokens_per_s(benchmark, recipe) -> float:
    return recipe.batch_tokens / benchmark.stats.stats.median


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_trainer_step(benchmark, record_median, tmp_path, shape, impl):
    recipe = load_recipe("tiny", [*SHAPES[shape], f"model.attn_implementation={IMPLS[impl]}"])
    trainer = Trainer(recipe, tmp_path)
    steps = iter(range(recipe.steps))

    group = f"trainer step {shape}"
    benchmark.group = group
    benchmark.pedantic(lambda: trainer.train_step(next(steps)), rounds=5, warmup_rounds=1)
    benchmark.extra_info["tokens_per_s"] = _tokens_per_s(benchmark, recipe)
    print(f"\n{group} {impl}: {benchmark.extra_info['tokens_per_s']:.0f} tokens/s")
    record_median(group, impl, benchmark, subject=impl == "fused")


def _dp_worker(rank, port, recipe, output, commands, done):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    trainer = Trainer(recipe, output)
    done.put("ready")
    step = 0
    while commands.get():
        trainer.train_step(step)
        step += 1
        done.put(step)
    dist.destroy_process_group()


def test_dp_scaling(benchmark, record_median, tmp_path):
    recipe = load_recipe("tiny", SHAPES["small-cpu"])
    group = "trainer step small-cpu, same global batch"
    benchmark.group = group

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    commands, done = [ctx.Queue() for _ in range(2)], ctx.Queue()
    workers = [ctx.Process(target=_dp_worker, args=(r, port, recipe, tmp_path / "dp2", commands[r], done))
               for r in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            done.get(timeout=300)

        def step():
            for q in commands:
                q.put(True)
            for _ in workers:
                done.get(timeout=300)

        benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    finally:
        for q in commands:
            q.put(False)
        for w in workers:
            w.join(timeout=60)
    benchmark.extra_info["tokens_per_s"] = _tokens_per_s(benchmark, recipe)
    print(f"\n{group} dp=2: {benchmark.extra_info['tokens_per_s']:.0f} tokens/s")
    record_median(group, "dp=2 (2 procs)", benchmark, subject=True)


def test_dp1_baseline(benchmark, record_median, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recipe = load_recipe("tiny", SHAPES["small-cpu"])
        trainer = Trainer(recipe, tmp_path)
        steps = iter(range(recipe.steps))
        group = "trainer step small-cpu, same global batch"
        benchmark.group = group
        benchmark.pedantic(lambda: trainer.train_step(next(steps)), rounds=5, warmup_rounds=1)
    finally:
        torch.set_num_threads(threads)
    benchmark.extra_info["tokens_per_s"] = _tokens_per_s(benchmark, recipe)
    print(f"\n{group} dp=1: {benchmark.extra_info['tokens_per_s']:.0f} tokens/s")
    record_median(group, "dp=1 (2 threads)", benchmark)
