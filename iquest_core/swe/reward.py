"""Trajectory rewards: the test reward plus an efficiency bonus for resolved trajectories of a group.

    cost = turns / max_turns + generated tokens / max_tokens
    reward = r_test + 0.1 x clamp(1 - cost / mean cost of the group's resolved trajectories, 0, 1)  if resolved
           = r_test                                                                                otherwise

(bonus 0 when that mean is 0), so a resolved trajectory always ranks above an unresolved one and a
shorter one above a longer one. A trajectory that ended in an infrastructure error or a verifier timeout
is not scored: its reward is None and it carries no weight in the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EFFICIENCY_WEIGHT = 0.1


def trajectory_cost(turns: int, tokens: int, max_turns: int, max_tokens: int) -> float:
    return turns / max_turns + tokens / max_tokens


def group_rewards(r_tests: Sequence[float | None], resolved: Sequence[bool], costs: Sequence[float]
                  ) -> list[float | None]:
    """Rewards of one group (None stays None: not scored)."""
    if not len(r_tests) == len(resolved) == len(costs):
        raise ValueError(f"r_tests, resolved, costs: expected equal lengths, got {len(r_tests)}, {len(resolved)}, "
                         f"{len(costs)}")
    scored = [r is not None and ok for r, ok in zip(r_tests, resolved)]
    resolved_costs = [c for c, ok in zip(costs, scored) if ok]
    mean = sum(resolved_costs) / len(resolved_costs) if resolved_costs else 0.0
    rewards: list[float | None] = []
    for r, ok, cost in zip(r_tests, scored, costs):
        if r is None:
            rewards.append(None)
        elif ok and mean > 0 and math.isfinite(cost):
            rewards.append(r + EFFICIENCY_WEIGHT * min(max(1 - cost / mean, 0.0), 1.0))
        else:
            rewards.append(float(r))
    return rewards
