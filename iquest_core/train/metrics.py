"""Training metrics: one JSON line per step in DIR/metrics.jsonl and a loss plot DIR/loss.png.

    writer = MetricsWriter(output_dir)           # appends; a resumed run continues the same file
    writer.log({"step": 1, "loss": 2.3, ...})     # any JSON-able values; "step" and "loss" required
    writer.plot()                                 # loss (and lr, if logged) against step
    read_metrics(output_dir) -> list[dict]        # the lines back

On resume, `MetricsWriter(dir, truncate_after=step)` drops lines of steps after the checkpoint's, so
the file holds exactly one line per step whatever the interruptions.
"""

from __future__ import annotations

import json
from pathlib import Path

from iquest_core.atomic_io import save_figure
from iquest_core.jsonl import read_jsonl, write_jsonl

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def read_metrics(directory: str | Path) -> list[dict]:
    """The records of directory/metrics.jsonl in order ([] when there is none)."""
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return []
    return [record for _, record in read_jsonl(path, "metrics")]


class MetricsWriter:
    """Appends per-step records to directory/metrics.jsonl and draws directory/loss.png."""

    def __init__(self, directory: str | Path, *, truncate_after: int | None = None, title: str = "") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / METRICS_FILE
        self.title = title
        self.records = read_metrics(self.directory)
        if truncate_after is not None:
            self.records = [r for r in self.records if r["step"] <= truncate_after]
            write_jsonl(self.path, self.records)

    def log(self, record: dict) -> None:
        """Append one record (needs "step" and "loss"); flushed at once."""
        if "step" not in record or "loss" not in record:
            raise ValueError(f"record: expected 'step' and 'loss' keys, got {sorted(record)}")
        self.records.append(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def plot(self) -> Path:
        """Draw loss (and lr on a second axis when logged) against step into loss.png; returns its path."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.records]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, [r["loss"] for r in self.records], color="tab:blue", label="loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if self.records and "lr" in self.records[-1]:
            lr_ax = ax.twinx()
            lr_ax.plot(steps, [r.get("lr", float("nan")) for r in self.records], color="tab:orange", alpha=0.6)
            lr_ax.set_ylabel("learning rate", color="tab:orange")
        ax.set_title(self.title or str(self.directory))
        fig.tight_layout()
        return save_figure(fig, self.directory / PLOT_FILE)


def plot_stages(stages: list[tuple[str, list[dict]]], path: str | Path) -> Path:
    """One loss curve per (name, records) stage, end to end on a shared step axis, into `path` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    for name, records in stages:
        ax.plot([offset + r["step"] for r in records], [r["loss"] for r in records], label=name)
        offset += records[-1]["step"] if records else 0
    ax.set_xlabel("step (stages end to end)")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
