"""Dynamic against static uniform mixture, measured: three synthetic sources of different difficulty, the
same steps and tokens, per seed.

    python scripts/mixture_experiment.py --output runs/mixture [--seeds 0,1,2] [--steps 150] [--heldout 64] [--control]

Sources (400 documents each, the last --heldout held out): easy (one short pattern repeated), medium (a 40-entry
key=value table, entries in random order), hard (two-digit additions "a+b=c"). DoReMi's recipe: the static
uniform run is also the reference model; its final per-source held-out losses are the dynamic run's
`reference`, so the dynamic run moves weight toward the sources where it lags the reference most. The
static run logs held-out losses with a dynamic mixture of eta = 0 (its weights stay uniform). 150 steps:
the reference's losses have levelled off by then (a reference far from its plateau makes every source's
early excess mostly "not trained yet", largest for the source that is learnt fastest). Writes
OUTPUT/results.json (per seed: the final weights, each source's share of the trained tokens, per-source
held-out losses of both runs at the last step and over the run, the source with the highest summed
excess loss) and OUTPUT/mixture.png (weights and held-out losses over steps); a run whose metrics exist
(OUTPUT/seed-N/result.json written after its static and dynamic runs) is summarised again, not rerun. The
control (--control) is the static run again with the same model init and another data order (data.seed).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from iquest_core.train.metrics import read_metrics
from iquest_core.train.recipe import load_recipe
from iquest_core.train.trainer import train

NAMES = ("easy", "medium", "hard")
MODEL = ["seq_len=128", "batch_tokens=2048", "optim.lr=3e-3", "schedule.warmup_steps=5", "checkpoint_every=0",
         "train.plot_every=20"]


def documents(name: str, rng: random.Random) -> list[str]:
    if name == "easy":
        return ["ab cd ef " * 8] * 400
    if name == "medium":
        table = {f"k{i}": f"v{rng.randrange(100)}" for i in range(40)}
        return [" ".join(f"{k}={table[k]}" for k in rng.sample(sorted(table), 12)) for _ in range(400)]
    return [" ".join(f"{a}+{b}={a + b}" for a, b in ((rng.randrange(50), rng.randrange(50)) for _ in range(8)))
            for _ in range(400)]


def mixture(eta: float, every: int, heldout: int, reference: list[float] = ()) -> str:
    """The data.mixture table: eta 0 keeps the weights uniform (the static run, held-out losses logged)."""
    return (f'{{kind="dynamic", eta={eta}, reference={list(reference)}, unit="tokens", every={every}, '
            f'heldout={heldout}, floor=0.05}}')


def run(out: Path, paths: list[str], seed: int, steps: int, mixture: str, data_seed: int = -1) -> None:
    table = ", ".join(f'{{path="{p}", name="{n}"}}' for p, n in zip(paths, NAMES))
    train(load_recipe("tiny", [*MODEL, f"steps={steps}", f"seed={seed}", f"data.seed={data_seed}",
                               f"data.sources=[{table}]", f"data.mixture={mixture}"]), out)


def token_shares(records: list[dict]) -> list[float]:
    """Each source's share of the run's target tokens (what it was really trained on)."""
    totals = [sum(r["source_tokens"][k] for r in records) for k in range(len(NAMES))]
    return [t / sum(totals) for t in totals]


def summarise(root: Path, seed: int) -> dict:
    """The measured figures of one seed's two runs, from their metrics.jsonl."""
    static_all, dynamic_all = read_metrics(root / "static"), read_metrics(root / "dynamic")
    static = [r for r in static_all if "mixture" in r]
    dynamic = [r for r in dynamic_all if "mixture" in r]
    reference = static[-1]["heldout_loss"]
    excess = [sum(max(0.0, r["heldout_loss"][k] - reference[k]) for r in dynamic) for k in range(3)]
    top = max(range(3), key=lambda k: dynamic[-1]["mixture"][k])
    control = [r for r in read_metrics(root / "static-reseeded") if "mixture" in r] \
        if (root / "static-reseeded" / "metrics.jsonl").is_file() else []
    spread = {"control_loss": control[-1]["heldout_loss"],
              "control_over_steps": [[r["step"], r["heldout_loss"]] for r in control]} if control else {}
    return {"seed": seed, "static_loss": reference, "dynamic_loss": dynamic[-1]["heldout_loss"], **spread,
            "static_tokens": token_shares(static_all), "dynamic_tokens": token_shares(dynamic_all),
            "dynamic_weights": dynamic[-1]["mixture"], "highest_weight": NAMES[top],
            "highest_excess": NAMES[max(range(3), key=excess.__getitem__)], "summed_excess": excess,
            "weights_over_steps": [[r["step"], r["mixture"]] for r in dynamic],
            "losses_over_steps": {"static": [[r["step"], r["heldout_loss"]] for r in static],
                                  "dynamic": [[r["step"], r["heldout_loss"]] for r in dynamic]}}


def run_control(output: Path, seed: int, steps: int, every: int, heldout: int) -> None:
    """The static uniform run again on seed's documents and model init with another data-order seed
    (data.seed = seed + 100): how far two runs that start alike and draw different batches end apart,
    as the dynamic run's batches part from the static run's at its first update."""
    root = output / f"seed-{seed}"
    paths = [str(root / f"{name}.jsonl") for name in NAMES]
    run(root / "static-reseeded", paths, seed, steps, mixture(0.0, every, heldout), data_seed=seed + 100)
    (root / "result.json").write_text(json.dumps(summarise(root, seed)) + "\n")


def run_seed(output: Path, seed: int, steps: int, every: int, heldout: int) -> dict:
    root = output / f"seed-{seed}"
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for name in NAMES:
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in documents(name, rng)))
        paths.append(str(path))
    run(root / "static", paths, seed, steps, mixture(0.0, every, heldout))
    reference = [r for r in read_metrics(root / "static") if "mixture" in r][-1]["heldout_loss"]
    run(root / "dynamic", paths, seed, steps, mixture(1.0, every, heldout, reference))
    return summarise(root, seed)


def plot(results: list[dict], path: Path) -> None:
    """Top: the dynamic run's weights per source over steps; bottom: held-out loss per source, dynamic minus
    static uniform, at equal steps and tokens, and the hard source's control minus static (dotted); one line
    per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for r in results:
        steps = [s for s, _ in r["weights_over_steps"]]
        static, dynamic = (dict((s, x) for s, x in r["losses_over_steps"][run]) for run in ("static", "dynamic"))
        for k, name in enumerate(NAMES):
            label = name if r is results[0] else None
            top.plot(steps, [w[k] for _, w in r["weights_over_steps"]], color=f"C{k}", alpha=0.7, label=label)
            bottom.plot(steps, [dynamic[s][k] - static[s][k] for s in steps], color=f"C{k}", alpha=0.7, label=label)
        if "control_over_steps" in r:
            control = dict((s, x) for s, x in r["control_over_steps"])
            bottom.plot(steps, [control[s][2] - static[s][2] for s in steps], color="C2", ls=":", alpha=0.7,
                        label="hard, control - static" if r is results[0] else None)
    top.axhline(1 / 3, color="gray", ls="--", lw=0.8, label="static uniform")
    top.set_ylabel("dynamic weight (token share)")
    top.legend(fontsize=8)
    bottom.axhline(0, color="gray", ls="--", lw=0.8)
    bottom.set_ylabel("held-out loss, dynamic - static")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--heldout", type=int, default=64, help="held-out documents per source")
    parser.add_argument("--control", action="store_true",
                        help="also the static run with another data-order seed on the same documents and init (control_loss)")
    args = parser.parse_args(argv)
    results = []
    for seed in map(int, args.seeds.split(",")):
        done = args.output / f"seed-{seed}" / "result.json"  # seeds may run as separate processes first
        if not done.is_file():
            done.write_text(json.dumps(run_seed(args.output, seed, args.steps, args.every, args.heldout)) + "\n")
        if args.control and not (done.parent / "static-reseeded" / "metrics.jsonl").is_file():
            run_control(args.output, seed, args.steps, args.every, args.heldout)
        results.append(summarise(done.parent, seed))
    (args.output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.output / "mixture.png")
    for r in results:
        print(r["seed"], "highest excess", r["highest_excess"], "token shares", [round(w, 3) for w in r["dynamic_tokens"]],
              "final weights", [round(w, 3) for w in r["dynamic_weights"]], "highest", r["highest_weight"],
              "static", [round(x, 3) for x in r["static_loss"]], "dynamic", [round(x, 3) for x in r["dynamic_loss"]],
              "static reseeded", [round(x, 3) for x in r.get("control_loss", [])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
