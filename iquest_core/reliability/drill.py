"""SDC drill: `python -m iquest_core.reliability.drill [--faults N] [--clean N] [--json PATH]`.

Trains a small LoopCoder (the "tiny" preset: gated loop attention through the fused op) under an
`SDCGuard` that checks every step, and
  1. runs `--clean` check steps with no fault (each a step + a replay): every error is a false positive;
  2. injects `--faults` single-bit flips, one per check step, spread evenly over the targets
     (parameter, gradient, activation, optimizer state) and bit fields (sign, exponent, mantissa),
     at a random element and bit, in the step or in its replay: each must be detected, named (the
     reported tensor is the flipped one) and classified transient; then `--propagated` flips in the
     outputs of modules the guard does not fingerprint (projections, norms, embedding), reported
     apart: those are caught only if they change a checked tensor downstream;
  3. times plain steps, guarded steps (the per-step tier: deterministic mode, fingerprints of the loss
     and all gradients) and check steps (with replay), interleaved, as medians of wall and process CPU
     time, and the time the fingerprinting itself takes inside the guarded steps;
  4. checks that digests are equal with 1 and 2 threads.
Prints a table and writes it as JSON (default sdc-drill.json).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import TARGETS, Fault, FaultInjector, field_bits
from iquest_core.reliability.fingerprint import fingerprint_many
from iquest_core.reliability.guard import SDCGuard
from iquest_core.reliability.state import optimizer_tensors

FIELDS = ("sign", "exponent", "mantissa")


def build_model(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, list[str]]:
    """The drill's model (tiny LoopCoder), its AdamW optimizer and the modules whose outputs are checked."""
    torch.manual_seed(seed)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    layers = range(model.config.num_hidden_layers)
    checked = [f"model.layers.{i}.{part}" for i in layers for part in ("self_attn", "mlp")]
    return model, optimizer, checked + ["model.norm"]


def language_model_step(model: torch.nn.Module, tokens: torch.Tensor) -> Callable[[], torch.Tensor]:
    """step_fn for the guard: next-token cross-entropy on tokens (B, L + 1), forward + backward."""
    def step() -> torch.Tensor:
        logits = model(tokens[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        loss.backward()
        return loss
    return step


def random_fault(rng: random.Random, guard: SDCGuard, checked: list[str], target: str, field: str) -> tuple[Fault, str]:
    """A fault of `target` in a random tensor, element and bit of `field`, for guard's next step, in the
    step itself or its replay; with the name the guard must report (prefix for activations)."""
    run = rng.choice((0, 1))
    if target == "activation":
        name = rng.choice(checked)
        bit = rng.choice(field_bits(torch.float32)[field])
        return Fault(target, name, rng.randrange(2**31), bit, guard.step, run), f"{name}#"
    if target == "optimizer":
        state = {k: v for k, v in optimizer_tensors(guard.optimizer).items() if v.is_floating_point() and v.numel()}
        name = rng.choice(sorted(state))
        tensor, reported = state[name], f"optimizer.{name}"
    else:
        name = rng.choice(sorted(guard.params))
        tensor, reported = guard.params[name], name if target == "param" else f"{name}.grad"
    bit = rng.choice(field_bits(tensor.dtype)[field])
    return Fault(target, name, rng.randrange(tensor.numel()), bit, guard.step, run), reported


def measure_overhead(model, tokens, checked, rounds: int) -> dict:
    """Plain steps, steps under the per-step tier and check steps (with replay), each `rounds` times in
    a fresh random order per round so that machine load hits all alike: medians of wall and process
    CPU time (ms), their ratios, and the share of a plain step that the tier's fingerprinting takes
    (measured inside the tier's steps)."""
    step = language_model_step(model, tokens)
    tier = SDCGuard(model, check_every=2**62)
    checker = SDCGuard(model, check_every=1, activations=checked)
    tier.run(step)  # step 0 is a check step; the later ones are not

    def plain():
        model.zero_grad(set_to_none=True)
        step()

    kinds = {"plain": plain, "per_step_tier": lambda: tier.run(step), "check_step": lambda: checker.run(step)}
    wall, cpu = {k: [] for k in kinds}, {k: [] for k in kinds}
    order_rng = random.Random(0)
    tier.fingerprint_seconds = 0.0
    for _ in range(rounds):
        for kind in order_rng.sample(list(kinds), len(kinds)):
            w, c = time.perf_counter(), time.process_time()
            kinds[kind]()
            wall[kind].append(time.perf_counter() - w)
            cpu[kind].append(time.process_time() - c)
    checker.close()
    medians = {clock: {k: statistics.median(v) * 1e3 for k, v in samples.items()}
               for clock, samples in (("wall_ms", wall), ("cpu_ms", cpu))}
    fingerprint_ms = tier.fingerprint_seconds / rounds * 1e3
    return {
        "rounds": rounds, "medians": medians, "fingerprint_ms_per_step": fingerprint_ms,
        "fingerprint_share_of_plain_step": fingerprint_ms / medians["wall_ms"]["plain"],
        "per_step_tier": {clock: m["per_step_tier"] / m["plain"] - 1 for clock, m in medians.items()},
        "check_step": {clock: m["check_step"] / m["plain"] - 1 for clock, m in medians.items()},
    }


def thread_determinism(model) -> dict:
    tensors = [p.grad for p in model.parameters() if p.grad is not None] + [torch.randn(4 * 2**20)]
    before = torch.get_num_threads()
    digests = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            digests[n] = fingerprint_many(tensors)
    finally:
        torch.set_num_threads(before)
    return {"tensors": len(tensors), "equal_1_vs_2_threads": bool(torch.equal(digests[1], digests[2]))}


def unchecked_modules(model: torch.nn.Module, tokens: torch.Tensor, checked: list[str]) -> list[str]:
    """Leaf modules that run in a forward pass and whose outputs the guard does not fingerprint."""
    called: set[str] = set()
    leaves = {name: m for name, m in model.named_modules() if name and next(m.children(), None) is None}
    handles = [m.register_forward_hook(lambda *_, name=name: called.add(name)) for name, m in leaves.items()]
    try:
        with torch.no_grad():
            model(tokens[:, :-1])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(called - set(checked))


def run_drill(*, faults: int, clean: int, propagated: int, seed: int, batch: int, seq_len: int,
              timing_rounds: int, progress: bool = True) -> dict:
    """Runs the drill of the module docstring; returns the report (JSON-able)."""
    rng = random.Random(seed)
    model, optimizer, checked = build_model(seed)
    gen = torch.Generator().manual_seed(seed)
    batches = [torch.randint(model.config.vocab_size, (batch, seq_len + 1), generator=gen) for _ in range(8)]
    guard = SDCGuard(model, check_every=1, optimizer=optimizer, activations=checked)
    injector = FaultInjector(guard)
    cells = {(t, f): {"injected": 0, "detected": 0, "named": 0, "transient": 0} for t in TARGETS for f in FIELDS}
    plan = _round_robin(list(cells), faults, rng)
    false_positives, misses = [], []
    bar = tqdm(total=clean + faults + propagated, desc="sdc drill", disable=not progress, file=sys.stderr)
    for i in range(clean):
        try:
            guard.run(language_model_step(model, batches[i % len(batches)]))
            optimizer.step()
        except SilentDataCorruptionError as e:
            false_positives.append(str(e))
        bar.update()
    for i, (target, field) in enumerate(plan):
        fault, reported = random_fault(rng, guard, checked, target, field)
        injector.schedule(fault)
        cell = cells[target, field]
        cell["injected"] += 1
        try:
            guard.run(language_model_step(model, batches[i % len(batches)]))
            misses.append(repr(fault))
        except SilentDataCorruptionError as e:
            cell["detected"] += 1
            cell["named"] += e.tensor.startswith(reported) if target == "activation" else e.tensor == reported
            cell["transient"] += e.persistent is False
        bar.update()
    unchecked = unchecked_modules(model, batches[0], checked)
    spread = {f: {"injected": 0, "detected": 0} for f in FIELDS}
    for i, field in enumerate(_round_robin(list(FIELDS), propagated, rng)):
        name = rng.choice(unchecked)
        bit = rng.choice(field_bits(torch.float32)[field])
        injector.schedule(Fault("activation", name, rng.randrange(2**31), bit, guard.step, rng.choice((0, 1))))
        spread[field]["injected"] += 1
        try:
            guard.run(language_model_step(model, batches[i % len(batches)]))
        except SilentDataCorruptionError:
            spread[field]["detected"] += 1
        bar.update()
    bar.close()
    guard.close()
    model.zero_grad(set_to_none=True)
    language_model_step(model, batches[0])()  # gradients for the determinism check
    report = {
        "model": {"preset": "tiny", "parameters": sum(p.numel() for p in model.parameters()), "batch": batch,
                  "seq_len": seq_len, "checked_activations": checked, "threads": torch.get_num_threads()},
        "clean_replays": clean, "false_positives": len(false_positives), "false_positive_messages": false_positives,
        "faults": faults, "detected": sum(c["detected"] for c in cells.values()), "missed": misses,
        "detection": {f"{t}/{f}": c for (t, f), c in cells.items()},
        "propagated": {"modules": unchecked, "by_field": spread},
        "determinism": thread_determinism(model),
        "overhead": measure_overhead(model, batches[0], checked, timing_rounds),
        "seed": seed,
    }
    return report


def _round_robin(cells: list, n: int, rng: random.Random) -> list:
    """n cells, each cell as often as possible equally, in random order."""
    plan = [cells[i % len(cells)] for i in range(n)]
    rng.shuffle(plan)
    return plan


def format_table(report: dict) -> str:
    lines = [f"{'target':<12}{'field':<10}{'injected':>9}{'detected':>9}{'rate':>9}{'named':>9}{'transient':>10}"]
    for key, c in report["detection"].items():
        target, field = key.split("/")
        n = max(c["injected"], 1)
        lines.append(f"{target:<12}{field:<10}{c['injected']:>9}{c['detected']:>9}{c['detected'] / n:>9.1%}"
                     f"{c['named'] / n:>9.1%}{c['transient'] / n:>10.1%}")
    total = max(report["faults"], 1)
    lines.append(f"{'all':<22}{report['faults']:>9}{report['detected']:>9}{report['detected'] / total:>9.1%}")
    spread = report["propagated"]["by_field"]
    lines.append("flips in unchecked activations (" + ", ".join(report["propagated"]["modules"][:3]) + ", ...), "
                 "caught only through what they change downstream: " +
                 ", ".join(f"{f} {c['detected']}/{c['injected']}" for f, c in spread.items()))
    lines.append(f"clean replays: {report['clean_replays']}, false positives: {report['false_positives']}")
    o = report["overhead"]
    lines.append(f"per-step gradient fingerprinting: {o['fingerprint_ms_per_step']:.3f} ms = "
                 f"{o['fingerprint_share_of_plain_step']:.2%} of a plain step (mean of {o['rounds']} guarded steps "
                 "over the median plain step)")
    for clock in ("wall_ms", "cpu_ms"):
        lines.append(f"{clock[:-3]:>4}: plain step {o['medians'][clock]['plain']:.2f} ms; guarded step "
                     f"(deterministic mode + fingerprints) {o['per_step_tier'][clock]:+.1%}; "
                     f"check step (+ replay) {o['check_step'][clock]:+.0%}")
    d = report["determinism"]
    lines.append(f"digests equal with 1 and 2 threads: {d['equal_1_vs_2_threads']} ({d['tensors']} tensors)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iquest_core.reliability.drill", description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=1000, help="injected single-bit faults (default 1000)")
    parser.add_argument("--clean", type=int, default=1000, help="clean check steps (default 1000)")
    parser.add_argument("--propagated", type=int, default=240,
                        help="extra flips in unchecked activations, reported apart (default 240)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--timing-rounds", type=int, default=200, help="interleaved timing rounds (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the model is tiny)")
    parser.add_argument("--json", default="sdc-drill.json", help="where to write the report")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name in ("faults", "clean", "propagated", "batch", "seq_len", "timing_rounds", "threads"):
        if getattr(args, name) < (0 if name in ("faults", "clean", "propagated") else 1):
            parser.error(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    report = run_drill(faults=args.faults, clean=args.clean, propagated=args.propagated, seed=args.seed,
                       batch=args.batch, seq_len=args.seq_len, timing_rounds=args.timing_rounds,
                       progress=not args.no_progress)
    print(format_table(report))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"report written to {args.json}")
    ok = report["detected"] == report["faults"] and report["false_positives"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
