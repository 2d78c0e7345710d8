"""`iquest swe plot RUN_DIR ... --output PNG`: per RL step of several runs (each run's metrics.jsonl; label:
its directory name), the resolved rate (raw and as a moving average), p(right operator) and the share of
well-formed turns, in one figure."""

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


PANELS = (("resolved_rate", "resolved rate of the step's trajectories"),
          ("right_fix_p", "p(right operator) after the step"),
          ("valid_actions", "well-formed share of the step's turns"))


def plot_records(runs: dict[str, list[dict]], output: Path) -> Path:
    """One panel per metric of PANELS that the records have (the resolved rate always, raw and as a moving
    average; the probability of the deciding tokens and the share of well-formed turns when logged) with a
    line per run (label -> metric records; a label starting with "control" dashed; labels with the same part
    after the first "-", as GRPO-seed1 and control-seed1, in one colour), into output (PNG, written
    atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in PANELS if p[0] == "resolved_rate" or any(p[0] in r for rs in runs.values() for r in rs)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    groups = list(dict.fromkeys(label.split("-", 1)[-1] for label in runs))
    for label, records in runs.items():
        color = plt.cm.tab10(groups.index(label.split("-", 1)[-1]) % 10)
        style = "--" if label.startswith("control") else "-"
        steps = [r["step"] for r in records]
        for ax, (key, _) in zip(axes[0], panels):
            values = [r.get(key, float("nan")) for r in records]
            if key == "resolved_rate":
                ax.plot(steps, values, color=color, alpha=0.25, linewidth=1, linestyle=style)
                values = moving_average(values)
            ax.plot(steps, values, color=color, linestyle=style,
                    label=f"{label} ({WINDOW}-step mean)" if key == "resolved_rate" else label)
    for ax, (_, title) in zip(axes[0], panels):
        ax.set_ylabel(title)
        ax.set_xlabel("GRPO step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize="small")
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
