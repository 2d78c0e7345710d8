"""`iquest swe plot RUN_DIR ... --output PNG`: the resolved rate per RL step of several runs (each run's
metrics.jsonl; label: its directory name), raw and as a moving average, in one figure."""

from __future__ import annotations

import json
from pathlib import Path

from iquest_core.atomic_io import save_figure
from iquest_core.command_line import CommandParser

WINDOW = 5


def moving_average(values: list[float], window: int = WINDOW) -> list[float]:
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def plot_runs(runs: list[Path], output: Path) -> Path:
    """plot_records of each run directory's metrics.jsonl, labelled by the directory's name."""
    labelled = {}
    for run in runs:
        path = run / "metrics.jsonl"
        if not path.is_file():
            raise ValueError(f"RUN_DIR: no metrics.jsonl in {run}")
        labelled[run.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return plot_records(labelled, output)


def plot_records(runs: dict[str, list[dict]], output: Path) -> Path:
    """The resolved rate per step of each run (label -> metric records), raw and as a moving average, and,
    when the records have it, the probability of the deciding tokens (right_fix_p) per step beside it, into
    output (PNG, written atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decided = any("right_fix_p" in r for records in runs.values() for r in records)
    fig, axes = plt.subplots(1, 2 if decided else 1, figsize=(11 if decided else 6.5, 3.6), squeeze=False)
    colors = ("tab:green", "tab:gray", "tab:blue", "tab:red")
    for color, (label, records) in zip(colors, runs.items()):
        steps, rates = [r["step"] for r in records], [r["resolved_rate"] for r in records]
        axes[0, 0].plot(steps, rates, color=color, alpha=0.3, linewidth=1)
        axes[0, 0].plot(steps, moving_average(rates), color=color, label=f"{label} ({WINDOW}-step mean)")
        if decided:
            axes[0, 1].plot(steps, [r.get("right_fix_p", float("nan")) for r in records], color=color, label=label)
    axes[0, 0].set_ylabel("resolved rate of the step's trajectories")
    if decided:
        axes[0, 1].set_ylabel("p(right operator) after the step")
    for ax in axes[0]:
        ax.set_xlabel("GRPO step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, output)


def plot_main(argv: list[str]) -> int:
    parser = CommandParser(prog="iquest swe plot", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--output", required=True, help="PNG path")
    args = parser.parse_args(argv)
    print(plot_runs([Path(r) for r in args.runs], Path(args.output)))
    return 0
