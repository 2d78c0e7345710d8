"""The three-stage difficulty curriculum of SFT: documents are bucketed by difficulty and the loader
draws stage k's bucket from step stage_steps[k-1] on (stage 1 from step 0).

boundaries [b1, b2]: difficulty < b1 is stage 1 (easy), b1 <= d < b2 stage 2, d >= b2 stage 3. Empty
boundaries: one stage, no curriculum. A document without a difficulty counts as stage 1.
"""

from __future__ import annotations

import bisect


def stage_of(difficulty: float | None, boundaries: list[float]) -> int:
    """0-based stage of a document's difficulty."""
    if difficulty is None:
        return 0
    return bisect.bisect_right(boundaries, float(difficulty))


def active_stage(step: int, stage_steps: list[int]) -> int:
    """0-based stage the loader draws from at `step`."""
    return bisect.bisect_right(stage_steps, step)
