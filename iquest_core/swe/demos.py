"""Supervised learning on the toy demonstrations (toy.demonstrations): the format cold start before RL and
the PPO-ptx term of every policy update.

`pretrain` fits the policy to noisy two-turn demonstrations (the loss on the assistant turns only).
`DemoLoss` is InstructGPT's PPO-ptx applied to them: every policy update minimises the RL loss plus
rl.ptx_coef x the token-mean next-token loss of a fresh batch of rl.ptx_rows demonstrations (drawn like the
pre-training ones, from a stream of their own), in the GRPO run and in its control alike. Without it, the
updates of a tiny policy on its decision tokens leak into the format tokens around them until actions stop
parsing (README, SWE-RL "Learning").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.model.loss import next_token_loss
from iquest_core.rl.grpo import policy_optimizer
from iquest_core.swe import toy
from iquest_core.swe.recipe import SWEPretrain
from iquest_core.swe.tasks import Task
from iquest_core.train.schema import Optim
from iquest_core.train.step import train_step


def demo_batch(demos: Sequence[tuple[list[int], list[bool]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, T) right-padded with 0 and labels (B, T): the next token where it is the assistant's, else
    IGNORE_INDEX (the next-token loss's input)."""
    width = max(len(ids) for ids, _ in demos)
    ids = torch.zeros(len(demos), width, dtype=torch.long)
    labels = torch.full((len(demos), width), IGNORE_INDEX)
    for row, (seq, mask) in enumerate(demos):
        ids[row, :len(seq)] = torch.tensor(seq)
        labels[row, :len(seq) - 1] = torch.where(torch.tensor(mask[1:]), torch.tensor(seq[1:]), IGNORE_INDEX)
    return ids, labels


def pretrain(model, tasks: Sequence[Task], pre: SWEPretrain, optim: Optim, tokenizer, seed: int) -> float:
    """Supervised fit to noisy demonstrations (the loss on the assistant turns only); the last loss."""
    demos = toy.demonstrations(tasks, pre.steps * pre.batch, correct_share=pre.correct_share, seed=seed,
                               tokenizer=tokenizer)
    optimizer = policy_optimizer(model, optim, lr=pre.lr)
    model.train()
    loss = math.nan
    for step in range(pre.steps):
        ids, labels = demo_batch(demos[step * pre.batch:(step + 1) * pre.batch])
        loss = train_step(model, optimizer, ids, labels, max_grad_norm=optim.max_grad_norm).loss
    return float(loss)


class DemoLoss:
    """The PPO-ptx term (see the module doc): `weight` and the unweighted loss of the next batch."""

    def __init__(self, tasks: Sequence[Task], *, weight: float, rows: int, correct_share: float, seed: int,
                 tokenizer) -> None:
        if not all(toy.is_toy_task(t) for t in tasks):
            raise ValueError("rl.ptx_coef: demonstrations exist only for the toy tasks; set rl.ptx_coef=0")
        self.tasks, self.weight, self.rows = list(tasks), float(weight), rows
        self.correct_share, self.seed, self.tokenizer = correct_share, seed, tokenizer
        self.drawn = 0  # batches drawn so far

    def unweighted(self, model) -> torch.Tensor:
        """The token-mean next-token loss of the next batch of demonstrations on their assistant turns."""
        demos = toy.demonstrations(self.tasks, self.rows, correct_share=self.correct_share,
                                   seed=f"ptx-{self.seed}-{self.drawn}", tokenizer=self.tokenizer)
        self.drawn += 1
        return next_token_loss(model, *demo_batch(demos))
