"""Learning-rate schedules: lr(step) for step = 0 .. steps - 1, as a multiple of the peak lr.

With W = warmup_steps, S = steps, r = min_lr_ratio:

- warm-up (every kind): lr(s) = (s + 1) / W for s < W.
- "cosine" with the extended low-LR tail: the cosine runs over the D = S - T - W steps between
  warm-up and tail, lr(s) = r + (1 - r) * (1 + cos(pi * (s - W) / D)) / 2 for W <= s < W + D, then
  the last T = round(tail_fraction * S) steps stay at r (the tail). tail_fraction = 0: the plain
  warm-up + cosine schedule.
- "wsd" (warm-up, stable, decay): 1 until the last K = round(decay_fraction * S) steps, then linear
  from 1 to r: lr(s) = 1 - (1 - r) * (s - (S - K) + 1) / K, reaching r at the last step.
- "constant": 1 after warm-up.
"""

from __future__ import annotations

import math

KINDS = ("cosine", "wsd", "constant")


def lr_factor(step: int, *, steps: int, kind: str, warmup_steps: int, min_lr_ratio: float = 0.1,
              tail_fraction: float = 0.0, decay_fraction: float = 0.2) -> float:
    """The schedule's multiple of the peak learning rate at `step` (0-based); formulas in the module doc."""
    if not 0 <= step < steps:
        raise ValueError(f"step: expected 0 <= step < steps={steps}, got {step}")
    if warmup_steps < 0 or warmup_steps >= steps:
        raise ValueError(f"warmup_steps: expected 0 <= warmup_steps < steps={steps}, got {warmup_steps}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        tail = round(tail_fraction * steps)
        decay = steps - tail - warmup_steps
        if not 0 <= tail_fraction < 1 or decay < 1:
            raise ValueError(f"tail_fraction: expected room for the cosine after warm-up and tail, got {tail_fraction}")
        if step >= warmup_steps + decay:
            return min_lr_ratio
        return min_lr_ratio + (1 - min_lr_ratio) * (1 + math.cos(math.pi * (step - warmup_steps) / decay)) / 2
    if kind == "wsd":
        decay = round(decay_fraction * steps)
        if not 0 < decay <= steps - warmup_steps:
            raise ValueError(f"decay_fraction: expected 0 < decay steps <= steps after warm-up, got {decay_fraction}")
        start = steps - decay
        if step < start:
            return 1.0
        return 1 - (1 - min_lr_ratio) * (step - start + 1) / decay
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def lr_at(recipe, step: int) -> float:
    """The learning rate of a recipe (`iquest_core.train.schema.Recipe`: optim.lr times the schedule's
    factor) at `step`."""
    s = recipe.schedule
    return recipe.optim.lr * lr_factor(step, steps=recipe.steps, kind=s.kind, warmup_steps=s.warmup_steps,
                                       min_lr_ratio=s.min_lr_ratio, tail_fraction=s.tail_fraction,
                                       decay_fraction=s.decay_fraction)
