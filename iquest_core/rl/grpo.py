"""GRPO / DAPO reinforcement learning with test-pass rewards (the Thinking path's RL stage).

    adv = group_advantages(rewards, group_size)    # (r - group mean) / (group std + 1e-6), per group
    loss = grpo_loss(logprobs, old_logprobs, advantages, mask, eps_low=0.2, eps_high=0.28)

The trainer (`train_rl`): each step samples G completions for each of P prompts with the model's
dual-cache `generate` (temperature, top-p), scores them (share of tests passed in the sandbox, plus DAPO's
soft overlong penalty), computes group advantages, drops groups whose rewards are all equal (dynamic
sampling: they carry no signal), and runs several epochs of minibatch policy steps against the
rollout's log-probs (clip-higher, token-level mean, no KL term, no reference model). With data.replay each
policy step also minimises a weighted next-token loss on earlier stages' data (`iquest_core.rl.replay`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import torch

from iquest_core.atomic_io import save_figure
from iquest_core.rl import tasks as rl_tasks
from iquest_core.rl.recipe import GRPO, GroupSampling, Pretrain, RLRecipe
from iquest_core.rl.replay import ReplayLoss, build_replay
from iquest_core.train import checkpoint
from iquest_core.train.metrics import MetricsWriter
from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.train.schema import Optim
from iquest_core.train.step import train_step

Reward = Callable[[Sequence[str], Sequence[str], Sequence[Sequence[str]]], list[float]]


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """rewards (N,) with N a multiple of group_size, consecutive entries forming a group; returns (N,)
    (r - mean of its group) / (std of its group + 1e-6), std with Bessel's correction, in rewards' dtype."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size: expected an int >= 2, got {group_size!r}")
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 1 or not rewards.dtype.is_floating_point \
            or rewards.numel() % group_size:
        raise ValueError(f"rewards: expected a 1-D float tensor whose length is a multiple of {group_size}, got "
                         f"{getattr(rewards, 'dtype', type(rewards).__name__)} {tuple(getattr(rewards, 'shape', ()))}")
    _check_finite(rewards, "rewards")
    groups = rewards.view(-1, group_size)
    return ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-6)).view(-1)


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              eps_low: float = 0.2, eps_high: float = 0.28) -> torch.Tensor:
    """Clipped policy-gradient loss with clip-higher, averaged over all unmasked tokens of the batch.

    logprobs, old_logprobs (B, T): log-probabilities of the sampled tokens under the current policy and
    the rollout policy; advantages (B,) per sequence or (B, T) per token; mask (B, T) bool or 0/1, true on
    response tokens. Per token: -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A) with
    ratio = exp(logprobs - old_logprobs). No KL term. Non-finite log-probabilities or advantages, or a mask
    with values other than 0 and 1, raise ValueError naming the argument."""
    if not isinstance(logprobs, torch.Tensor) or logprobs.dim() != 2 or not logprobs.dtype.is_floating_point:
        raise ValueError(f"logprobs: expected a float tensor (B, T), got {getattr(logprobs, 'shape', logprobs)!r}")
    if not isinstance(old_logprobs, torch.Tensor) or old_logprobs.shape != logprobs.shape:
        raise ValueError(f"old_logprobs: expected shape {tuple(logprobs.shape)}, got "
                         f"{tuple(getattr(old_logprobs, 'shape', ()))}")
    if not isinstance(mask, torch.Tensor) or mask.shape != logprobs.shape:
        raise ValueError(f"mask: expected shape {tuple(logprobs.shape)}, got {tuple(getattr(mask, 'shape', ()))}")
    if not isinstance(advantages, torch.Tensor) or advantages.shape not in (logprobs.shape[:1], logprobs.shape):
        raise ValueError(f"advantages: expected shape ({logprobs.shape[0]},) or {tuple(logprobs.shape)}, got "
                         f"{tuple(getattr(advantages, 'shape', ()))}")
    if not (0 <= eps_low < 1 and eps_high >= 0):
        raise ValueError(f"eps_low, eps_high: expected 0 <= eps_low < 1 and eps_high >= 0, got {eps_low}, {eps_high}")
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"mask: expected bool or 0/1 values, got {sorted(set(mask.unique().tolist()) - {0, 1})[:3]}")
    for tensor, name in ((logprobs, "logprobs"), (old_logprobs, "old_logprobs"), (advantages, "advantages")):
        _check_finite(tensor, name)
    mask = mask.to(logprobs.dtype)
    if not mask.sum() > 0:
        raise ValueError("mask: expected at least one unmasked token")
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    ratio = torch.exp(logprobs - old_logprobs.detach())
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)
    return (per_token * mask).sum() / mask.sum()


def _check_finite(tensor: torch.Tensor, name: str) -> None:
    bad = (~torch.isfinite(tensor)).nonzero()
    if len(bad):
        where = tuple(bad[0].tolist())
        raise ValueError(f"{name}: expected finite values, got {tensor[where].item()} at index {where}")


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """DAPO's soft overlong punishment of response lengths (tokens, EOS included): 0 up to
    max_len - cache_len, then falling linearly to -1 at max_len, -1 beyond (a response cut off at
    max_len without EOS counts as longer than max_len)."""
    if not 0 <= cache_len < max_len:
        raise ValueError(f"cache_len: expected 0 <= cache_len < max_len={max_len}, got {cache_len}")
    lengths = lengths.to(torch.float64)
    soft = ((max_len - cache_len) - lengths) / max(cache_len, 1)
    return torch.where(lengths <= max_len - cache_len, torch.zeros_like(lengths),
                       torch.where(lengths <= max_len, soft, -torch.ones_like(lengths)))


def sequence_logprobs(model, ids: torch.Tensor, prompt_len: int, temperature: float) -> torch.Tensor:
    """log pi(token) of every token after the prompt of ids (B, P + T), logits divided by temperature as
    when sampling; returns (B, T) float32."""
    logits = model(ids).logits[:, prompt_len - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, ids[:, prompt_len:, None])[..., 0]


@dataclass
class Rollout:
    ids: torch.Tensor        # (N, P + T) prompt + response, padded with EOS after the first EOS
    mask: torch.Tensor       # (N, T) bool: response tokens up to and including the first EOS
    rewards: torch.Tensor    # (N,) float64: test share + overlong penalty
    passed: torch.Tensor     # (N,) float64: test share alone
    tasks: list[int]         # (N,) task index of each row


def rollout(model, tasks: list[rl_tasks.Task], task_ids: list[int], reward: Reward, rl: GRPO,
            generator: torch.Generator) -> Rollout:
    """G = rl.group_size samples for each task in task_ids (all prompts have one length)."""
    group, max_new = rl.group_size, rl.max_new_tokens
    prompts = torch.tensor([rl_tasks.encode(tasks[t].prompt) for t in task_ids]).repeat_interleave(group, 0)
    model.eval()
    ids = model.generate(prompts, max_new, do_sample=True, temperature=rl.temperature, top_p=rl.top_p,
                         eos_token_id=rl_tasks.EOS_ID, generator=generator)
    response = ids[:, prompts.shape[1]:]
    if response.shape[1] < max_new:  # every row ended early: pad so shapes are fixed
        response = torch.cat([response, response.new_full((len(response), max_new - response.shape[1]),
                                                          rl_tasks.EOS_ID)], 1)
    is_eos = response == rl_tasks.EOS_ID
    ended = is_eos.any(1)
    first_eos = torch.where(ended, is_eos.int().argmax(1), torch.full_like(ended, max_new, dtype=torch.long))
    mask = torch.arange(max_new)[None] <= first_eos[:, None]
    rows = [t for t in task_ids for _ in range(group)]
    completions = [rl_tasks.decode(r) for r in response.tolist()]
    passed = torch.tensor(reward([tasks[t].prompt for t in rows], completions, [tasks[t].tests for t in rows]),
                          dtype=torch.float64)
    lengths = torch.where(ended, first_eos + 1, torch.full_like(first_eos, max_new + 1))
    rewards = passed + overlong_penalty(lengths, max_new, rl.overlong_cache)
    return Rollout(torch.cat([prompts, response], 1), mask, rewards, passed, rows)


# --- the trainer -------------------------------------------------------------------------------------

def policy_optimizer(model, optim: Optim, lr: float | None = None) -> torch.optim.Optimizer:
    """AdamW over the model's parameters with the recipe's optim section (lr unless given)."""
    return torch.optim.AdamW(model.parameters(), lr=optim.lr if lr is None else lr, betas=(optim.beta1, optim.beta2),
                             eps=optim.eps, weight_decay=optim.weight_decay)


def pretrain_policy(model, tasks: list[rl_tasks.Task], pre: Pretrain, optim: Optim, seed: int) -> float:
    """Brief supervised pre-training on demonstrations of the task family that teach the format but not
    the operations (rl_tasks.demonstrations) with the shared training step; the loss covers the completion
    and its EOS. Returns the last loss."""
    pairs = rl_tasks.demonstrations(tasks, pre.steps * pre.batch, seed=seed)
    optimizer = policy_optimizer(model, optim, lr=pre.lr)
    model.train()
    loss = math.nan
    for step in range(pre.steps):
        batch = pairs[step * pre.batch:(step + 1) * pre.batch]
        rows = [rl_tasks.encode(p) + rl_tasks.encode(c) + [rl_tasks.EOS_ID] for p, c in batch]
        width = max(map(len, rows))
        ids = torch.tensor([r + [rl_tasks.EOS_ID] * (width - len(r)) for r in rows])
        labels = torch.full_like(ids, IGNORE_INDEX)
        for i, ((prompt, _), row) in enumerate(zip(batch, rows)):
            labels[i, len(prompt) - 1:len(row) - 1] = ids[i, len(prompt):len(row)]
        loss = train_step(model, optimizer, ids, labels, max_grad_norm=optim.max_grad_norm).loss
    return loss


@torch.no_grad()
def greedy_scores(model, tasks: list[rl_tasks.Task], reward: Reward,
                  max_new_tokens: int) -> dict[str, float]:
    """The greedy completion of every task: mean share of tests passed ("pass_rate") and share of tasks
    with every test passed ("solved")."""
    model.eval()
    prompts = torch.tensor([rl_tasks.encode(t.prompt) for t in tasks])
    ids = model.generate(prompts, max_new_tokens, eos_token_id=rl_tasks.EOS_ID)
    completions = [rl_tasks.decode(r) for r in ids[:, prompts.shape[1]:].tolist()]
    shares = reward([t.prompt for t in tasks], completions, [t.tests for t in tasks])
    return {"pass_rate": sum(shares) / len(tasks), "solved": sum(s == 1.0 for s in shares) / len(tasks)}


def shuffle_rewards(kept: list[Rollout], generator: torch.Generator) -> None:
    """The control: each kept group's rewards permuted at random in place, so the update no longer knows
    which sample earned which reward (the same amount of signal-free updating)."""
    for group in kept:
        group.rewards = group.rewards[torch.randperm(len(group.rewards), generator=generator)]


def _collect(model, tasks, reward: Reward, rl: GRPO, generator: torch.Generator) -> tuple[Rollout, list[Rollout]]:
    """Rollouts until rl.prompts_per_step groups with unequal rewards are kept, or
    rl.dynamic_sampling_rounds rounds are done. Returns the first round (for unbiased metrics) and
    the kept groups (as one-group rollouts)."""
    group, kept, first = rl.group_size, [], None
    for _ in range(rl.dynamic_sampling_rounds):
        task_ids = torch.randint(len(tasks), (rl.prompts_per_step,), generator=generator).tolist()
        batch = rollout(model, tasks, task_ids, reward, rl, generator)
        first = first or batch
        for g in range(len(task_ids)):
            rows = slice(g * group, (g + 1) * group)
            if batch.rewards[rows].std() > 0 and len(kept) < rl.prompts_per_step:
                kept.append(Rollout(batch.ids[rows], batch.mask[rows], batch.rewards[rows], batch.passed[rows],
                                    batch.tasks[rows]))
        if len(kept) == rl.prompts_per_step:
            break
    return first, kept


def policy_update(model, optimizer, kept: list[Rollout], rl: GroupSampling, optim: Optim, prompt_len: int,
                  generator: torch.Generator, replay: ReplayLoss | None = None) -> dict[str, float]:
    """rl.epochs passes of minibatch GRPO steps over the kept groups against their rollout log-probs;
    with `replay`, each step's loss adds replay.weight x the next-token loss of a replay batch."""
    ids = torch.cat([k.ids for k in kept])
    mask = torch.cat([k.mask for k in kept])
    advantages = torch.cat([group_advantages(k.rewards, rl.group_size) for k in kept]).float()
    model.eval()
    with torch.no_grad():
        old = sequence_logprobs(model, ids, prompt_len, rl.temperature)
    model.train()
    losses, clipped, norms, replayed = [], [], [], []
    for _ in range(rl.epochs):
        order = torch.randperm(len(ids), generator=generator)
        for start in range(0, len(ids), rl.minibatch):
            rows = order[start:start + rl.minibatch]
            new = sequence_logprobs(model, ids[rows], prompt_len, rl.temperature)
            loss = grpo_loss(new, old[rows], advantages[rows], mask[rows], eps_low=rl.eps_low, eps_high=rl.eps_high)
            if replay is None:
                loss.backward()
            else:
                auxiliary = replay.unweighted(model)
                (loss + replay.weight * auxiliary).backward()
                replayed.append(auxiliary.item())
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.max_grad_norm)))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                ratio = torch.exp(new - old[rows])[mask[rows]]
                clipped.append(float(((ratio < 1 - rl.eps_low) | (ratio > 1 + rl.eps_high)).float().mean()))
            losses.append(loss.item())
    stats = {"loss": sum(losses) / len(losses), "clip_frac": sum(clipped) / len(clipped),
             "grad_norm": sum(norms) / len(norms)}
    if replayed:
        stats["replay_loss"] = sum(replayed) / len(replayed)
    return stats


def plot_rewards(runs: dict[str, list[dict]], path: Path) -> Path:
    """Per run (label -> metric records), the share of rollouts that solve their task (solid) and the mean
    share of tests passed (dashed) per step into path (PNG, atomic)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (label, records), color in zip(runs.items(), ("tab:green", "tab:gray", "tab:blue", "tab:red")):
        steps = [r["step"] for r in records]
        ax.plot(steps, [r["solved"] for r in records], label=f"{label}: tasks solved", color=color)
        ax.plot(steps, [r["pass_rate"] for r in records], label=f"{label}: tests passed", color=color,
                linestyle="--", alpha=0.6)
    ax.set_xlabel("RL step")
    ax.set_ylabel("share of the step's rollouts")
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def train_rl(recipe: RLRecipe, output: str | Path, *, resume: bool = False, reward: Reward | None = None
             ) -> list[dict]:
    """Run the RL recipe into output: metrics.jsonl, loss.png, reward.png,
    checkpoints/step-N (DCP), policy/ (Hugging Face layout), summary.json (with greedy_eval, the
    greedy scores over all tasks before and after). The policy starts from model.init_from, or from a
    preset pre-trained briefly on the toy task family (saved to pretrained/). With rl.shuffle_rewards the
    run is the control (shuffle_rewards). `reward` (prompts, completions, tests -> shares in [0, 1]) replaces
the sandboxed TestPassReward. Returns the metric records."""
    from iquest_core.model import LoopCoderForCausalLM
    from iquest_core.train.recipe import model_config

    rl, optim, seed = recipe.rl, recipe.optim, recipe.seed
    torch.manual_seed(seed)
    config = model_config(recipe)
    if config.vocab_size < rl_tasks.VOCAB_SIZE:
        raise ValueError(f"model.vocab_size: the toy tasks use a byte vocabulary of {rl_tasks.VOCAB_SIZE}, got "
                         f"{config.vocab_size}")
    replay = build_replay(recipe, config.vocab_size)  # its sources are read before anything is written
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tasks = rl_tasks.toy_tasks(recipe.slots)
    prompt_len = len(tasks[0].prompt)
    if reward is None:
        reward = rl_tasks.TestPassReward(workers=recipe.sandbox.workers or None, timeout_s=recipe.sandbox.timeout_s)
    summary: dict[str, Any] = {"tasks": len(tasks)}
    if recipe.model.init_from:
        model = LoopCoderForCausalLM.from_pretrained(recipe.model.init_from)
    else:
        model = LoopCoderForCausalLM(config)
        if not resume or not checkpoint.checkpoints(output / "checkpoints"):
            start = time.monotonic()
            summary["pretrain_loss"] = pretrain_policy(model, tasks, recipe.pretrain, optim, seed)
            summary["pretrain_seconds"] = round(time.monotonic() - start, 1)
            model.save_pretrained(output / "pretrained")
    optimizer = policy_optimizer(model, optim)
    first_step = 1
    found = checkpoint.checkpoints(output / "checkpoints") if resume else []
    if found:
        state = checkpoint.load(found[-1], model, optimizer, model_config=model.config.to_dict())
        first_step = state["step"] + 1
        summary = state["summary"]
        if replay is not None:
            if not state.get("replay"):
                raise ValueError(f"data.replay: {found[-1]} was written by a run without replay")
            replay.load_state_dict(state["replay"])
    elif recipe.greedy_eval:
        summary["greedy_before"] = greedy_scores(model, tasks, reward, rl.max_new_tokens)
    writer = MetricsWriter(output, truncate_after=first_step - 1, title="GRPO on the toy task set")
    for step in range(first_step, recipe.steps + 1):
        start = time.monotonic()
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        first, kept = _collect(model, tasks, reward, rl, generator)
        record = {"step": step, "reward": float(first.rewards.mean()), "pass_rate": float(first.passed.mean()),
                  "solved": float((first.passed == 1.0).double().mean()),
                  "response_len": float(first.mask.sum(1).float().mean()), "kept_groups": len(kept)}
        if rl.shuffle_rewards:  # its own generator: the rollouts draw the same numbers as a normal run
            shuffle_rewards(kept, torch.Generator().manual_seed(seed * 1_000_003 - step))
        if kept:
            record.update(policy_update(model, optimizer, kept, rl, optim, prompt_len, generator, replay))
        else:
            record.update(loss=0.0, clip_frac=0.0, grad_norm=0.0)
        record["seconds"] = round(time.monotonic() - start, 3)
        writer.log(record)
        print(f"rl step {step}/{recipe.steps}: solved {record['solved']:.3f} pass {record['pass_rate']:.3f} "
              f"reward {record['reward']:.3f} "
              f"kept {len(kept)} loss {record['loss']:.4f} ({record['seconds']:.1f}s)", flush=True)
        if step == recipe.steps or (recipe.checkpoint_every and step % recipe.checkpoint_every == 0):
            checkpoint.save(output / "checkpoints", step, model, optimizer, keep=recipe.keep_checkpoints,
                            trainer_state={"stage": recipe.stage, "model_config": model.config.to_dict(),
                                           "summary": summary, "replay": replay and replay.state_dict()})
    records = writer.records
    if records:
        writer.plot()
        plot_rewards({"control" if rl.shuffle_rewards else "GRPO": records}, output / "reward.png")
    if recipe.greedy_eval:
        summary["greedy_after"] = greedy_scores(model, tasks, reward, rl.max_new_tokens)
    summary["steps"] = len(records)
    model.save_pretrained(output / "policy")
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return records
