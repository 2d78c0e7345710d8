"""Data mixtures beyond static weights: compositional components, replay of earlier stages' data, and the
DoReMi weight update of a dynamic mixture.

Components (recipe ``data.components = [{path = "code.toml", scale = 2.0}]``): a component is a TOML
file ``name = "code"`` with ``sources = [{path, weight, kind}, ...]``; its sources join ``data.sources``
with their weights multiplied by ``scale`` and named ``"{component}/{path}"``. With ``data.mixture.unit
= "tokens"`` a source's weight is its share of the step's tokens (a document is drawn with probability
proportional to weight / mean document length), so the realised token shares, logged per step as
``source_tokens``, match the normalised weights.

Replay (``data.replay = {sources = [...], share = S}``): `ReplayLoader` fills round(S x rows) rows of
every global batch from the replay sources (their own seeded stream) and the rest from the stage's own
sources; both streams are in its state_dict, so the global batch stays a function of the recipe and seed
(dp-invariant) and resumes exactly.

Dynamic mixture (``data.mixture = {kind = "dynamic", every = N, eta, smoothing, floor, reference, heldout}``):
`doremi_update` is DoReMi's rule (Xie et al. 2023, Algorithm 1): log w += eta * max(loss - reference, 0)
per source, normalised, then smoothed toward uniform, w = (1 - smoothing) w + smoothing / k (the paper's
c = 1e-3 by default); `floor` is then a minimum weight per source: weights under it are raised to it and
the others scaled down in proportion, so a source above the floor is not pulled toward uniform.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

SOURCE_KEYS = ("path", "weight", "kind", "name")


def source_name(spec: dict[str, Any]) -> str:
    return spec.get("name") or spec["path"]


def expand_components(data: dict[str, Any]) -> list[dict[str, Any]]:
    """data.sources followed by every component's sources, weights scaled; ValueError naming
    data.components[i] for a missing or malformed component file."""
    sources = [dict(s) for s in data["sources"]]
    for i, component in enumerate(data.get("components", [])):
        where = f"data.components[{i}]"
        if not isinstance(component, dict) or not isinstance(component.get("path"), str) \
                or set(component) - {"path", "scale"}:
            raise ValueError(f"{where}: expected {{path = \"FILE.toml\", scale = S}}, got {component!r}")
        scale = component.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ValueError(f"{where}.scale: expected a number > 0, got {scale!r}")
        path = Path(component["path"])
        try:
            table = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{where}.path: cannot read the component {path}: {e}") from None
        name, members = table.get("name", path.stem), table.get("sources")
        if not isinstance(members, list) or not members or set(table) - {"name", "sources"}:
            raise ValueError(f"{where}.path: {path} must hold `name` and a non-empty `sources` list only")
        for j, spec in enumerate(members):
            if not isinstance(spec, dict) or "path" not in spec or set(spec) - set(SOURCE_KEYS):
                raise ValueError(f"{where}.path: {path} sources[{j}]: expected a table of {SOURCE_KEYS}")
            sources.append({**spec, "weight": float(spec.get("weight", 1.0)) * scale,
                            "name": f"{name}/{source_name(spec)}"})
    return sources


def mean_tokens(source) -> float:
    """Mean document length (tokens) of a loader source."""
    if hasattr(source, "shards"):
        return float(np.mean(source.shards.lengths()))
    return float(np.mean([len(d.ids) for d in source.documents]))


def draw_weights(weights: list[float], sources: list, unit: str) -> list[float]:
    """Per-document draw weights that realise `weights` as document shares (unit "documents") or as
    token shares (unit "tokens")."""
    if unit == "documents":
        return list(weights)
    return [w / mean_tokens(s) for w, s in zip(weights, sources)]


def doremi_update(weights: np.ndarray, losses: np.ndarray, reference: np.ndarray, *, eta: float,
                  floor: float, smoothing: float = 1e-3) -> np.ndarray:
    """DoReMi's multiplicative-weights step on the excess losses and its smoothing toward uniform, then
    every weight raised to at least `floor` (see the module doc)."""
    weights, losses, reference = (np.asarray(a, dtype=np.float64) for a in (weights, losses, reference))
    k = len(weights)
    if not (weights.shape == losses.shape == reference.shape == (k,)) or k == 0:
        raise ValueError(f"losses, reference: expected {k} values like weights, got {losses.shape}, {reference.shape}")
    if not 0 <= floor * k < 1:
        raise ValueError(f"data.mixture.floor: expected 0 <= floor < 1 / sources = {1 / k:.4g}, got {floor}")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"data.mixture.smoothing: expected 0 <= smoothing <= 1, got {smoothing}")
    logits = np.log(weights / weights.sum()) + eta * np.maximum(losses - reference, 0.0)
    updated = np.exp(logits - logits.max())
    updated = (1 - smoothing) * updated / updated.sum() + smoothing / k
    return raise_to_floor(updated, floor)


def raise_to_floor(weights: np.ndarray, floor: float) -> np.ndarray:
    """Normalised `weights` with every weight under `floor` set to it and the rest scaled down in proportion
    (repeated until none falls under it; needs floor x len(weights) < 1)."""
    fixed = np.zeros(len(weights), dtype=bool)
    while True:
        free = weights * ~fixed
        result = np.where(fixed, floor, free * (1 - floor * fixed.sum()) / free.sum())
        under = ~fixed & (result < floor)
        if not under.any():
            return result
        fixed |= under


class ReplayLoader:
    """A stage's BatchLoader and a replay BatchLoader side by side: each global batch is the stage's rows
    followed by the replay rows (see the module doc). Same interface as BatchLoader."""

    def __init__(self, main, replay) -> None:
        self.main, self.replay = main, replay

    @property
    def sources(self) -> list:
        return self.main.sources + self.replay.sources

    def next_batch(self, step: int) -> list:
        offset = len(self.main.sources)
        replayed = self.replay.next_batch(step)
        for row in replayed:
            row.documents = [(s + offset, d) for s, d in row.documents]
        return self.main.next_batch(step) + replayed

    def state_dict(self) -> dict[str, Any]:
        return {"main": self.main.state_dict(), "replay": self.replay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.main.load_state_dict(state["main"])
        self.replay.load_state_dict(state["replay"])


def replay_rows(share: float, rows_per_step: int) -> int:
    """Rows of each global batch given to replay: round(share x rows); ValueError naming data.replay.share
    when a positive share rounds to no row or to every row."""
    if not 0 <= share < 1 or math.isnan(share):
        raise ValueError(f"data.replay.share: expected 0 <= share < 1, got {share}")
    rows = round(share * rows_per_step)
    if share > 0 and not 0 < rows < rows_per_step:
        raise ValueError(f"data.replay.share: {share} of {rows_per_step} rows per step is {share * rows_per_step:.2f} "
                         f"rows; raise batch_tokens / seq_len so that it is a whole number of rows in (0, rows)")
    return rows
