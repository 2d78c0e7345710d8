"""Replay against forgetting, measured: a tiny LoopCoder learns task A, then task B, with and without replay
of A (data.replay share 0.1); accuracy on held-out items of both tasks after each stage, per seed.

    python scripts/replay_experiment.py --output runs/replay [--seeds 0,1,2] [--steps-a 300] [--steps-b 300]

Tasks (chat records: user "A: g c", assistant the answer, loss on the answer only; pairs of a 12-letter
alphabet): A maps the first letter through one fixed permutation, B through another that differs on every
letter, so B alone teaches the opposite answer to A's questions unless the task letter is heeded. A
byte-level tokenizer (no merges) makes every letter one token. Held-out pairs (3 of the 12 of every first
letter) never occur in training: solving them needs the rule (first letter, ignore the second), not the items. An item is solved
when the greedy assistant turn after the question is exactly the answer. Writes OUTPUT/results.json
(accuracy per seed, stage and task) and OUTPUT/replay.png; a seed whose OUTPUT/seed-N/result.json exists
is read, not rerun (seeds can run as separate processes first).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

from iquest_core.data.chat import render_chat
from iquest_core.data.tokenizer import train_tokenizer
from iquest_core.eval import common
from iquest_core.train.export import export
from iquest_core.train.recipe import load_recipe
from iquest_core.train.trainer import train

LETTERS = "abcdefghijkl"
PERM_A = dict(zip(LETTERS, "dkbjalcefhgi"))
PERM_B = dict(zip(LETTERS, "hcjfkbdigale"))  # differs from PERM_A on every letter
TASKS = {"A": lambda xs: [PERM_A[xs[0]]], "B": lambda xs: [PERM_B[xs[0]]]}
MODEL = ["seq_len=128", "batch_tokens=1280", "model.hidden_size=64", "model.intermediate_size=192",
         "model.num_hidden_layers=2", "optim.lr=3e-3", 'data.loss_on="assistant"', "schedule.warmup_steps=10", "checkpoint_every=0",
         "train.plot_every=50"]


def items(seed: int) -> dict[str, dict[str, list[list[str]]]]:
    """Per task, disjoint train (108) and held-out (36) letter pairs: for every first letter, 9 of its 12
    pairs train and 3 are held out, so each letter's rule is learnt from as many items and weighs the same
    in the held-out accuracy."""
    rng = random.Random(seed)
    out = {}
    for task in TASKS:
        out[task] = {"train": [], "heldout": []}
        for first in LETTERS:
            pairs = [[first, second] for second in rng.sample(LETTERS, len(LETTERS))]
            out[task]["train"] += pairs[:9]
            out[task]["heldout"] += pairs[9:]
    return out


def question(task: str, xs: list[str]) -> dict:
    return {"role": "user", "content": f"{task}: {' '.join(xs)}"}


def write_source(path: Path, task: str, seqs: list[list[str]]) -> str:
    """Chat records: the question, and the answer as the assistant turn (the only tokens with loss)."""
    path.write_text("".join(json.dumps({"messages": [question(task, xs), {"role": "assistant", "content": " ".join(
        TASKS[task](xs))}]}) + "\n" for xs in seqs))
    return str(path)


def accuracy(model_dir: Path, task: str, seqs: list[list[str]]) -> float:
    model, tokenizer = common.load_model(model_dir)
    start = [tokenizer.special_id("<|im_start|>"), *tokenizer.encode("assistant\n")]
    prompts = [render_chat([question(task, xs)], tokenizer)[0] + start for xs in seqs]
    eos = common.stop_ids(model, tokenizer, ["<|im_end|>"])
    with torch.no_grad():
        outs = common.greedy_batches(model, tokenizer, prompts, max_new_tokens=4, eos=eos, batch_size=200)
    return sum(o.strip() == " ".join(TASKS[task](xs)) for o, xs in zip(outs, seqs)) / len(seqs)


def stage(out: Path, sources: list[str], tokenizer: Path, seed: int, steps: int, init_from: str = "",
          replay: list[str] = (), share: float = 0.0) -> Path:
    table = ", ".join(f'{{path="{p}"}}' for p in sources)
    sets = [*MODEL, f"steps={steps}", f"seed={seed}", f"data.sources=[{table}]", f'data.tokenizer="{tokenizer}"']
    if init_from:
        sets.append(f'model.init_from="{init_from}"')
    if replay:
        replayed = ", ".join(f'{{path="{p}"}}' for p in replay)
        sets.append(f"data.replay={{sources=[{replayed}], share={share}}}")
    train(load_recipe("tiny", sets), out / "run")
    export(out / "run" / "checkpoints" / f"step-{steps}", out / "model")
    return out / "model"


def untrained(out: Path, tokenizer: Path, seed: int) -> Path:
    """The stage-A model before its first step (the trainer's initialisation for `seed`), saved like an export."""
    from iquest_core.data.tokenizer import load_tokenizer
    from iquest_core.model import LoopCoderForCausalLM
    from iquest_core.train.recipe import model_config
    torch.manual_seed(seed)
    LoopCoderForCausalLM(model_config(load_recipe("tiny", MODEL))).save_pretrained(out)
    load_tokenizer(tokenizer).save(out)
    return out


def run_seed(output: Path, seed: int, steps_a: int, steps_b: int, share: float) -> dict:
    root = output / f"seed-{seed}"
    root.mkdir(parents=True, exist_ok=True)
    data = items(seed)
    a = write_source(root / "a.jsonl", "A", data["A"]["train"])
    b = write_source(root / "b.jsonl", "B", data["B"]["train"])
    tok_dir = root / "tokenizer"
    train_tokenizer([LETTERS], vocab_size=265).save(tok_dir)  # bytes only: one token a letter

    def scores(model_dir: Path) -> dict[str, float]:
        return {t: accuracy(model_dir, t, data[t]["heldout"]) for t in TASKS}

    result = {"seed": seed, "before": scores(untrained(root / "untrained", tok_dir, seed))}
    model_a = stage(root / "A", [a], tok_dir, seed, steps_a)
    result["after_A"] = scores(model_a)
    print(seed, "after A", result["after_A"], flush=True)
    result["B_no_replay"] = scores(stage(root / "B", [b], tok_dir, seed, steps_b, str(model_a)))
    print(seed, "B without replay", result["B_no_replay"], flush=True)
    result["B_replay"] = scores(stage(root / "B-replay", [b], tok_dir, seed, steps_b, str(model_a), [a], share))
    print(seed, f"B with replay {share}", result["B_replay"], flush=True)
    (root / "result.json").write_text(json.dumps(result) + "\n")
    return result


def plot(results: list[dict], path: Path) -> None:
    """Held-out accuracy per stage and task, one dot per seed (the two B runs are branches from after A)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = ["before", "after_A", "B_no_replay", "B_replay"]
    for k, task in enumerate(TASKS):
        for n, r in enumerate(results):
            ax.plot([i - 0.12 + 0.24 * k + 0.03 * (n - len(results) / 2) for i in range(4)],
                    [100 * r[label][task] for label in labels], "o", color=f"C{k}", alpha=0.7,
                    label=f"task {task}" if n == 0 else None)
    ax.set_xticks(range(4), ["before", "after A", "then B,\nno replay", "then B,\nreplay 0.1 of A"])
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"forgetting of A while learning B, {len(results)} seeds (one dot each)")
    ax.legend(loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps-a", type=int, default=300)
    parser.add_argument("--steps-b", type=int, default=300)
    parser.add_argument("--share", type=float, default=0.1)
    args = parser.parse_args(argv)
    results = []
    for seed in map(int, args.seeds.split(",")):
        done = args.output / f"seed-{seed}" / "result.json"  # seeds may run as separate processes first
        results.append(json.loads(done.read_text()) if done.is_file() else
                       run_seed(args.output, seed, args.steps_a, args.steps_b, args.share))
    (args.output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.output / "replay.png")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
