"""PNG plots of the scaling tools (matplotlib's object API, no pyplot state, no display needed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from iquest_core.scaling.fit import PowerLawFit


def plot_runs(runs: Mapping[str, Mapping[str, np.ndarray]], fits: Mapping[str, PowerLawFit], path: str | Path
              ) -> None:
    """One panel per language: measured loss against tokens (points, one colour per model size) and the
    fitted law at each of those sizes (lines). runs as read_runs returns; fits: language -> fit."""
    fig = Figure(figsize=(4.2 * len(runs), 3.6), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (lang, r) in zip(axes, runs.items()):
        sizes = np.unique(r["params"])
        colours = [f"C{i % 10}" for i in range(sizes.size)]
        d = np.geomspace(r["tokens"].min() / 1.5, r["tokens"].max() * 1.5, 100)
        for n, colour in zip(sizes, colours):
            at = r["params"] == n
            ax.scatter(r["tokens"][at], r["loss"][at], color=colour, s=18, label=f"N = {n:.3g}")
            if lang in fits:
                ax.plot(d, fits[lang].predict(n, d), color=colour, lw=1.2)
        title = lang
        if lang in fits:
            f = fits[lang]
            title += f"\nalpha={f.alpha:.3g}  beta={f.beta:.3g}  E={f.E:.3g}"
        ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel="loss (nats/token)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=90)


def plot_iso_loss(loss: Callable[[np.ndarray, np.ndarray], np.ndarray], N_range: tuple[float, float],
                  D_range: tuple[float, float], path: str | Path, title: str = "") -> None:
    """Iso-loss contours of loss(N, D) over log-spaced N and D, with dashed iso-compute lines C = 6 N D."""
    n, d = np.meshgrid(np.geomspace(*N_range, 120), np.geomspace(*D_range, 120))
    values = loss(n, d)
    fig = Figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.subplots()
    contours = ax.contour(n, d, values, levels=12, cmap="viridis")
    ax.clabel(contours, fontsize=7, fmt="%.3g")
    flops = np.geomspace(6 * N_range[0] * D_range[0], 6 * N_range[1] * D_range[1], 7)[1:-1]
    for c in flops:
        ax.plot(n[0], c / (6 * n[0]), color="grey", ls="--", lw=0.7)
    ax.set(xscale="log", yscale="log", xlim=N_range, ylim=D_range, xlabel="parameters N", ylabel="tokens D",
           title=title or "iso-loss contours (dashed: C = 6ND)")
    fig.savefig(path, dpi=90)


def plot_mixture(mixture: Mapping[str, float], path: str | Path, title: str = "") -> None:
    """Horizontal bars of a mixture's shares."""
    fig = Figure(figsize=(5.0, 0.5 + 0.4 * len(mixture)), layout="constrained")
    ax = fig.subplots()
    langs = list(mixture)
    shares = [mixture[lang] for lang in langs]
    ax.barh(langs, shares, color="C0")
    for y, share in enumerate(shares):
        ax.text(share, y, f" {share:.3f}", va="center", fontsize=8)
    ax.set(xlim=(0, 1.1), xlabel="share", title=title or "mixture")
    ax.invert_yaxis()
    fig.savefig(path, dpi=90)
