"""Multi-turn GRPO on SWE tasks: `iquest rl --recipe swe-tiny`.

Each step draws rl.prompts_per_step tasks and runs rl.group_size trajectories of each (rollout in
multiturn.py, environments from engines.py). Rewards: r_test plus the efficiency bonus of
swe/reward.py within the group; unscored trajectories (infrastructure error, verifier timeout) are left
out and a group needs two scored members with different r_test to be kept (the efficiency bonus orders
trajectories inside a group with a signal; alone, its small differences would be scaled up to unit
advantages by the group normalisation and train on noise). With rl.shuffle_rewards (the
control run) the rewards are permuted inside each group before the advantages, which removes any link
between a trajectory and its reward. The group advantage applies to every masked-in token; the loss is
grpo_loss (clip-higher, token mean) against the log-probabilities recorded at sampling, plus, with a
demos.DemoLoss, its weight x the next-token loss of a batch of demonstrations (PPO-ptx).

With nucleus sampling (rl.top_p < 1) the recorded log-probabilities are the whole distribution's, as
token_logprobs computes the new ones: the ratio is then exactly 1 on the policy that sampled. The
nucleus's own probability of a sampled token is larger by 1 / (nucleus mass) <= 1 / top_p (the nucleus
holds at least top_p of the mass), a factor within [1, 1.053] at top_p 0.95, which the loss ignores.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from iquest_core.rl.grpo import group_advantages, grpo_loss
from iquest_core.rl.multiturn import RolloutLimits, Trajectory, TurnCodec, parse_tool_call, rollout
from iquest_core.swe.demos import DemoLoss
from iquest_core.swe.recipe import MultiTurnGRPO
from iquest_core.swe.reward import group_rewards, trajectory_cost
from iquest_core.train.schema import Optim


def padded_batch(trajectories: list[Trajectory]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids (B, T) right-padded with 0, mask (B, T) bool (False on padding), old log-probs (B, T)."""
    width = max(len(t.ids) for t in trajectories)
    ids = torch.zeros(len(trajectories), width, dtype=torch.long)
    mask = torch.zeros(len(trajectories), width, dtype=torch.bool)
    old = torch.zeros(len(trajectories), width)
    for row, t in enumerate(trajectories):
        ids[row, :len(t.ids)] = torch.tensor(t.ids)
        mask[row, :len(t.ids)] = torch.tensor(t.mask)
        old[row, :len(t.ids)] = torch.tensor(t.old_logprobs)
    return ids, mask, old


def token_logprobs(model, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, T): log pi(ids[:, t] | ids[:, :t]) with logits / temperature as when sampling; column 0 is 0
    (the first token is never the model's). Padding on the right does not change earlier positions."""
    logits = model(ids).logits[:, :-1].float() / temperature
    picked = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return torch.cat([picked.new_zeros(len(ids), 1), picked], 1)


def score_groups(trajectories: list[Trajectory], group_size: int, *, max_turns: int, max_tokens: int,
                 shuffle: torch.Generator | None = None) -> list[tuple[Trajectory, float]]:
    """(trajectory, advantage) of every scored trajectory of the groups worth keeping; sets t.reward."""
    kept = []
    for start in range(0, len(trajectories), group_size):
        group = trajectories[start:start + group_size]
        costs = [trajectory_cost(t.turns, t.generated, max_turns, max_tokens) for t in group]
        rewards = group_rewards([t.r_test for t in group], [t.resolved for t in group], costs)
        for t, r in zip(group, rewards):
            t.reward = r
        scored = [t for t in group if t.reward is not None]
        if len(scored) < 2 or len({t.r_test for t in scored}) < 2:
            continue
        values = torch.tensor([t.reward for t in scored], dtype=torch.float64)
        if shuffle is not None:
            values = values[torch.randperm(len(values), generator=shuffle)]
        if values.std() == 0:
            continue
        kept += list(zip(scored, group_advantages(values, len(values)).tolist()))
    return kept


def reference_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token mean over mask of the k3 estimate of KL(policy || reference) at the sampled tokens:
    exp(ref - new) - (ref - new) - 1 (>= 0, 0 where the two agree)."""
    delta = ref_logprobs - logprobs
    mask = mask.to(logprobs.dtype)
    return ((torch.exp(delta) - delta - 1) * mask).sum() / mask.sum()


def warmup_schedule(optimizer, updates: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rising linearly over the first `updates` optimizer steps to its set value, then
    constant (Adam's first steps move every parameter by about lr whatever its gradient's size)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: min(1.0, (done + 1) / max(1, updates)))


def policy_update(model, optimizer, kept: list[tuple[Trajectory, float]], rl: MultiTurnGRPO, optim: Optim,
                  generator: torch.Generator, reference=None, schedule=None,
                  demos: DemoLoss | None = None) -> dict[str, float]:
    """rl.epochs passes of minibatch steps of grpo_loss against the sampling log-probs, plus
    rl.kl_coef x reference_kl to the reference policy when one is given and demos.weight x the
    demonstrations' next-token loss when demos is given (its mean reported as ptx_loss; loss stays the
    GRPO loss); schedule (a learning-rate scheduler) steps after every optimizer step."""
    losses, norms, supervised = [], [], []
    model.train()
    for _ in range(rl.epochs):
        order = torch.randperm(len(kept), generator=generator).tolist()
        for start in range(0, len(order), rl.minibatch):
            chosen = [kept[i] for i in order[start:start + rl.minibatch]]
            ids, mask, old = padded_batch([t for t, _ in chosen])
            advantages = torch.tensor([a for _, a in chosen], dtype=torch.float32)
            new = token_logprobs(model, ids, rl.temperature)
            loss = grpo_loss(new, old, advantages, mask, eps_low=rl.eps_low, eps_high=rl.eps_high)
            if reference is not None and rl.kl_coef:
                with torch.no_grad():
                    ref = token_logprobs(reference, ids, rl.temperature)
                loss = loss + rl.kl_coef * reference_kl(new, ref, mask)
            if demos is None:
                loss.backward()
            else:
                auxiliary = demos.unweighted(model)
                (loss + demos.weight * auxiliary).backward()
                supervised.append(auxiliary.item())
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if schedule is not None:
                schedule.step()
            losses.append(loss.item())
    stats = {"loss": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms)}
    if supervised:
        stats["ptx_loss"] = sum(supervised) / len(supervised)
    return stats


def rollout_tasks(model, codec: TurnCodec, factory, tasks: list, indices: list[int], limits: RolloutLimits,
                  pool: ThreadPoolExecutor, generator: torch.Generator) -> list:
    """One trajectory per entry of `indices` (a task number each), in fresh environments that are closed
    afterwards, whatever happens; the model is put in eval mode."""
    envs = [factory.make(tasks[i]) for i in indices]
    model.eval()
    try:
        return rollout(model, codec, envs, indices, limits, pool, generator)
    finally:
        for env in envs:
            env.close()


def rollout_limits(rl: MultiTurnGRPO, temperature: float | None = None) -> RolloutLimits:
    """The recipe's token limits and sampling, at rl.temperature unless another is given (0: greedy)."""
    return RolloutLimits(rl.max_new_tokens, rl.max_tokens, rl.max_context,
                         rl.temperature if temperature is None else temperature, rl.top_p)


def rl_step(model, optimizer, codec: TurnCodec, factory, tasks: list, rl: MultiTurnGRPO, optim: Optim,
            pool: ThreadPoolExecutor, generator: torch.Generator, shuffle: torch.Generator | None,
            reference=None, schedule=None, demos: DemoLoss | None = None) -> dict[str, Any]:
    """One GRPO step: rollouts, rewards, advantages, policy update (policy_update's extras); returns its
    metrics record."""
    start = time.monotonic()
    chosen = torch.randint(len(tasks), (rl.prompts_per_step,), generator=generator).tolist()
    indices = [i for i in chosen for _ in range(rl.group_size)]
    trajectories = rollout_tasks(model, codec, factory, tasks, indices, rollout_limits(rl), pool, generator)
    rollout_s = time.monotonic() - start
    kept = score_groups(trajectories, rl.group_size, max_turns=rl.max_turns, max_tokens=rl.max_tokens,
                        shuffle=shuffle)
    record = {"resolved_rate": sum(t.resolved for t in trajectories) / len(trajectories),
              "r_test": sum(t.r_test or 0.0 for t in trajectories) / len(trajectories),
              "unscored": sum(t.r_test is None for t in trajectories),
              "turns": sum(t.turns for t in trajectories) / len(trajectories),
              "generated_tokens": sum(t.generated for t in trajectories) / len(trajectories),
              "valid_actions": valid_share(trajectories), "kept_trajectories": len(kept),
              "rollout_seconds": round(rollout_s, 2)}
    record.update(policy_update(model, optimizer, kept, rl, optim, generator, reference, schedule, demos) if kept
                  else {"loss": 0.0, "grad_norm": 0.0})
    record["lr"] = optimizer.param_groups[0]["lr"]
    record["seconds"] = round(time.monotonic() - start, 2)
    return record


def evaluate(model, codec: TurnCodec, factory, tasks: list, pool: ThreadPoolExecutor, *, samples: int,
             limits: RolloutLimits, generator: torch.Generator) -> dict[str, float]:
    """`samples` trajectories per task at limits.temperature (0: greedy, then samples should be 1): the share
    resolved and the share of the agent's turns that were well-formed tool calls."""
    indices = [i for i in range(len(tasks)) for _ in range(samples)]
    trajectories = rollout_tasks(model, codec, factory, tasks, indices, limits, pool, generator)
    return {"resolved": sum(t.resolved for t in trajectories) / len(trajectories),
            "valid_actions": valid_share(trajectories)}


def valid_share(trajectories: list[Trajectory]) -> float:
    """The share of the agent's turns whose reply holds a well-formed tool call."""
    replies = [reply for t in trajectories for reply in t.replies]
    return sum(isinstance(parse_tool_call(r), dict) for r in replies) / max(1, len(replies))


def write_summary(output: Path, summary: dict) -> None:
    from iquest_core.atomic_io import write_atomic

    write_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
