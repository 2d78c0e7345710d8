"""The guard's cost per training step, measured on CPU shapes."""

from __future__ import annotations

import random
import statistics
import time

import torch

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.model.loss import next_token_loss
from iquest_core.reliability.guard import SDCGuard
from iquest_core.reliability.state import digests_of, optimizer_tensors

OVERHEAD_SHAPES = {
    "small-cpu L=512": ("small-cpu", {}, 512),
    "hidden 512, 4 layers, L=512": ("small-cpu", dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                                                     num_attention_heads=8, num_key_value_heads=2), 512),
}


def measure_overhead(rounds: int, shapes=OVERHEAD_SHAPES) -> list[dict]:
    """Per shape (one replica, one row, AdamW): medians over `rounds` of a plain step (forward, backward,
    optimizer), a guarded step with only the always-on checks, and a guarded check step (always-on +
    replay with its snapshot), interleaved in random order so that machine load hits all alike."""
    results = []
    for label, (preset, overrides, length) in shapes.items():
        torch.manual_seed(0)
        config = LoopCoderConfig.preset(preset, **overrides)
        rows = torch.randint(config.vocab_size, (1, length + 1))
        kinds = {}
        for kind in ("plain", "always_on", "check_step"):  # each trains its own copy of the same model
            torch.manual_seed(0)
            model = LoopCoderForCausalLM(config)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step_fn(model=model):
                loss = next_token_loss(model, rows[:, :-1], rows[:, 1:])
                loss.backward()
                return loss

            def plain(step_fn=step_fn, model=model, optimizer=optimizer):
                step_fn()
                optimizer.step()
                model.zero_grad(set_to_none=True)

            every = 2**62 if kind == "always_on" else 1
            guard = None if kind == "plain" else SDCGuard(model, optimizer, check_every=every)
            kinds[kind] = plain if guard is None else (lambda guard=guard, step_fn=step_fn: guard.step(step_fn))
        times = {k: [] for k in kinds}
        order = random.Random(0)
        for i in range(rounds + 1):  # round 0 warms up
            for kind in order.sample(list(kinds), len(kinds)):
                began = time.perf_counter()
                kinds[kind]()
                if i:
                    times[kind].append(time.perf_counter() - began)
        medians = {k: statistics.median(v) for k, v in times.items()}
        fingerprinting = _always_on_fingerprint_seconds(model, optimizer, rounds)
        results.append({"shape": label, "parameters": sum(p.numel() for p in model.parameters()), "rounds": rounds,
                        "threads": torch.get_num_threads(), "plain_ms": medians["plain"] * 1e3,
                        "always_on": medians["always_on"] / medians["plain"] - 1,
                        "check_step": medians["check_step"] / medians["plain"] - 1,
                        "always_on_fingerprint_ms": fingerprinting * 1e3,
                        "always_on_fingerprint_share": fingerprinting / medians["plain"]})
    return results


def _always_on_fingerprint_seconds(model, optimizer, rounds: int) -> float:
    """Median time of what the always-on checks fingerprint in one step, measured alone (the difference
    of two step timings drowns in noise): parameters + optimizer state twice (at rest, after the update)
    and the gradients once (stand-ins of the parameters' shapes)."""
    state = list(model.parameters()) + list(optimizer_tensors(optimizer).values())
    grads = [torch.randn_like(p) for p in model.parameters()]
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        digests_of(state)
        digests_of(grads)
        digests_of(state)
        times.append(time.perf_counter() - began)
    return statistics.median(times)
