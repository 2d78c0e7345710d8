"""A hand-made group of two responses to toy task 3: its solution (reward 1) and a wrong program (reward 0)."""

from __future__ import annotations

import torch

from iquest_core.rl import grpo as rl, tasks as rl_tasks


def scored_pair() -> tuple[rl.Rollout, int]:
    """(the rollout, the prompt's length); responses padded with EOS, masks up to each one's first EOS."""
    task = rl_tasks.toy_tasks()[3]
    prompt = torch.tensor(rl_tasks.encode(task.prompt))
    good, bad = rl_tasks.encode(task.solution) + [0], rl_tasks.encode("x ** 7") + [0, 0, 0]
    width = max(len(good), len(bad))
    responses = torch.tensor([good + [0] * (width - len(good)), bad + [0] * (width - len(bad))])
    ids = torch.cat([prompt.expand(2, -1), responses], 1)
    mask = torch.tensor([[i < len(good) for i in range(width)], [i < 7 for i in range(width)]])
    rewards = torch.tensor([1.0, 0.0], dtype=torch.float64)
    return rl.Rollout(ids, mask, rewards, rewards.clone(), [3, 3]), len(prompt)
