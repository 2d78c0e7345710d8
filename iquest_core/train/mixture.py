"""The trainer's side of data mixtures (data/mixture.py): the loader a recipe's [data] table asks for
(static or dynamic weights, documents or token shares, replay rows), the realised tokens per source, and
the dynamic mixture's periodic held-out evaluation and DoReMi update.

Dynamic mixture records (in metrics.jsonl, on the steps it updates): "mixture" (the weights now in
force, normalised) and "heldout_loss" (per source, the token-mean loss on its held-out documents before
the update); OUTPUT/mixture.png plots both against step. The weights live in the loader's state, so a
resumed run continues with them bitwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iquest_core.data.loader import BatchLoader, Row, model_inputs, open_sources
from iquest_core.data.mixture import (ReplayLoader, doremi_update, draw_weights, mean_tokens, replay_rows,
                                      source_name)
from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.model.loss import next_token_loss
from iquest_core.train.schema import Recipe, Source

PLOT_FILE = "mixture.png"


def _specs(sources: list[Source]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) for s in sources]


def build_loader(recipe: Recipe, tokenizer, vocab_size: int, rows_per_step: int):
    """The BatchLoader (or ReplayLoader with data.replay) of the recipe's data section."""
    data, unit = recipe.data, recipe.data.mixture.unit
    seed = recipe.seed if data.seed < 0 else data.seed
    sources = open_sources(_specs(data.sources), tokenizer, vocab_size, template=data.template, loss_on=data.loss_on)
    extra = replay_rows(data.replay.share, rows_per_step)
    loader = BatchLoader(sources, draw_weights([s.weight for s in data.sources], sources, unit),
                         seq_len=recipe.seq_len, rows_per_step=rows_per_step - extra, seed=seed,
                         boundaries=data.curriculum.boundaries, stage_steps=data.curriculum.stage_steps,
                         heldout=data.mixture.heldout if data.mixture.kind == "dynamic" else 0)
    if not extra:
        return loader
    replayed = open_sources(_specs(data.replay.sources), tokenizer, vocab_size, template=data.template,
                            loss_on=data.loss_on, key="data.replay.sources")
    return ReplayLoader(loader, BatchLoader(replayed, draw_weights([s.weight for s in data.replay.sources],
                                                                   replayed, unit),
                                            seq_len=recipe.seq_len, rows_per_step=extra, seed=seed + 1))


def source_names(recipe: Recipe) -> list[str]:
    """Names of the loader's sources in order: data.sources, then data.replay.sources ("replay:" + name)."""
    data = recipe.data
    return ([source_name(spec) for spec in _specs(data.sources)]
            + [f"replay:{source_name(spec)}" for spec in _specs(data.replay.sources)])


def source_tokens(rows: list[Row], count: int) -> list[int]:
    """Target tokens of each source in a batch's rows."""
    tokens = [0] * count
    for row in rows:
        counted = (row.labels != IGNORE_INDEX).numpy()
        for k, (s, _) in enumerate(row.documents):
            tokens[s] += int(counted[int(row.cu_seqlens[k]):int(row.cu_seqlens[k + 1])].sum())
    return tokens


class DynamicMixture:
    """DoReMi updates of a BatchLoader's weights every `every` steps (data.mixture, kind "dynamic")."""

    def __init__(self, recipe: Recipe, loader: BatchLoader) -> None:
        mixture = recipe.data.mixture
        if recipe.parallel.cp > 1:
            raise ValueError("data.mixture.kind: a dynamic mixture needs parallel.cp = 1")
        self.loader, self.every, self.eta, self.floor = loader, mixture.every, mixture.eta, mixture.floor
        self.smoothing = mixture.smoothing
        self.unit, self.document_mask = mixture.unit, recipe.data.document_mask
        self.reference = np.asarray(mixture.reference or [0.0] * len(loader.sources), dtype=np.float64)
        self.rows = [loader.heldout_rows(s) for s in range(len(loader.sources))]

    def due(self, step: int) -> bool:
        """Whether the update runs after optimizer step `step` (0-based)."""
        return (step + 1) % self.every == 0

    @torch.no_grad()
    def heldout_losses(self, model, device: torch.device) -> np.ndarray:
        """Per source, the token-mean loss on its held-out documents."""
        was_training = model.training
        model.eval()
        losses = []
        for rows in self.rows:
            inputs = model_inputs(rows, self.document_mask)
            labels = inputs.pop("labels").to(device)
            inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
            total = next_token_loss(model, labels=labels, reduction="sum", **inputs)
            losses.append(total.item() / max(1, int((labels != IGNORE_INDEX).sum())))
        model.train(was_training)
        return np.asarray(losses)

    def weights(self) -> np.ndarray:
        """The mixture weights in force (normalised), whatever the draw unit."""
        weights = np.asarray(self.loader.weights, dtype=np.float64)
        if self.unit == "tokens":  # undo draw_weights' division by the mean document length
            weights = weights * [mean_tokens(s) for s in self.loader.sources]
        return weights / weights.sum()

    def update(self, model, device: torch.device) -> dict[str, list[float]]:
        """Measure, update the loader's weights, return the metrics fields."""
        losses = self.heldout_losses(model, device)
        new = doremi_update(self.weights(), losses, self.reference, eta=self.eta, floor=self.floor,
                            smoothing=self.smoothing)
        self.loader.weights = np.asarray(draw_weights(list(new), self.loader.sources, self.unit), dtype=np.float64)
        return {"mixture": new.tolist(), "heldout_loss": losses.tolist()}


def plot(output: Path, records: list[dict], names: list[str]) -> Path | None:
    """OUTPUT/mixture.png: weights and held-out losses per source against step (None before an update)."""
    updates = [r for r in records if "mixture" in r]
    if not updates:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from iquest_core.atomic_io import save_figure
    steps = [r["step"] for r in updates]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for k, name in enumerate(names[:len(updates[0]["mixture"])]):
        top.plot(steps, [r["mixture"][k] for r in updates], label=name)
        bottom.plot(steps, [r["heldout_loss"][k] for r in updates], label=name)
    top.set_ylabel("weight")
    bottom.set_ylabel("held-out loss")
    bottom.set_xlabel("step")
    top.legend(fontsize=8)
    return save_figure(fig, output / PLOT_FILE, dpi=100)
