"""`iquest rl --recipe swe-tiny --output DIR`: multi-turn GRPO of a tiny policy on mined SWE tasks.

Without `tasks`, the toy repository (toy.py) is built into DIR/toy-repo and mined (head mode) into
DIR/tasks.jsonl; the policy (tiny preset, byte chat vocabulary) is first fitted briefly to noisy
two-turn demonstrations (the format, the right operator in pretrain.correct_share of them), then trained
with grpo.rl_step, whose updates add rl.ptx_coef x the loss on fresh demonstrations (demos.DemoLoss). Writes DIR/metrics.jsonl (resolved_rate, r_test, kept_trajectories, loss, ... per
step; on the toy tasks also right_fix_p, toy.right_fix_probability after the step), DIR/reward.png
(resolved rate per step), DIR/summary.json, DIR/policy (Hugging Face layout).
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from iquest_core.jsonl import write_jsonl
from iquest_core.rl.grpo import policy_optimizer
from iquest_core.rl.multiturn import TurnCodec
from iquest_core.swe import toy as swe_toy
from iquest_core.swe.demos import DemoLoss, pretrain
from iquest_core.swe.engines import EnvFactory
from iquest_core.swe.grpo import evaluate, rl_step, rollout_limits, warmup_schedule, write_summary
from iquest_core.swe.plot import plot_records
from iquest_core.swe.recipe import SWERecipe


def _tasks(recipe: SWERecipe, output: Path) -> list:
    from iquest_core.swe import load_tasks, mine_repository

    if recipe.tasks:
        return load_tasks(recipe.tasks)
    if (output / "tasks.jsonl").is_file():
        return load_tasks(output / "tasks.jsonl")
    repo = output / "toy-repo"
    if not repo.exists():
        swe_toy.build_toy_repository(repo)
    tasks = mine_repository(repo, mode="head", workers=recipe.rollout.workers).tasks
    write_jsonl(output / "tasks.jsonl", [t.to_dict() for t in tasks])
    return tasks


def scores(model, codec: TurnCodec, factory: EnvFactory, tasks: list, pool: ThreadPoolExecutor, recipe: SWERecipe,
           *, seed: int) -> dict[str, float]:
    """The policy's resolved share over all tasks, greedy (one trajectory each) and sampled (eval_samples each
    at rl.temperature), and the share of its sampled turns that were well-formed tool calls."""
    generator = torch.Generator().manual_seed(seed)
    greedy = evaluate(model, codec, factory, tasks, pool, samples=1, limits=rollout_limits(recipe.rl, 0.0),
                      generator=generator)
    sampled = evaluate(model, codec, factory, tasks, pool, samples=recipe.eval_samples,
                       limits=rollout_limits(recipe.rl), generator=generator)
    return {"greedy_resolved": greedy["resolved"], "sampled_resolved": sampled["resolved"],
            "sampled_valid_actions": sampled["valid_actions"]}


def train_swe(recipe: SWERecipe, output: str | Path, resume: bool = False) -> list[dict]:
    """Run the recipe into output (see the module doc); returns the metric records. No checkpoints: resume
    raises ValueError."""
    from iquest_core.model import LoopCoderForCausalLM
    from iquest_core.train.metrics import MetricsWriter
    from iquest_core.train.recipe import model_config

    if resume:
        raise ValueError("--resume: the SWE recipes write no checkpoints; start a new run")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    tokenizer = swe_toy.ByteChatTokenizer()
    config = model_config(recipe)
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"model.vocab_size: the byte chat vocabulary needs {tokenizer.vocab_size}, got "
                         f"{config.vocab_size}")
    tasks = _tasks(recipe, output)
    rl, ro = recipe.rl, recipe.rollout
    summary: dict[str, Any] = {"tasks": len(tasks), "shuffle_rewards": rl.shuffle_rewards}
    demos = DemoLoss(tasks, weight=rl.ptx_coef, rows=rl.ptx_rows, correct_share=recipe.pretrain.correct_share,
                     seed=recipe.seed, tokenizer=tokenizer) if rl.ptx_coef else None
    if recipe.model.init_from:
        model = LoopCoderForCausalLM.from_pretrained(recipe.model.init_from)
    else:
        model = LoopCoderForCausalLM(config)
        start = time.monotonic()
        summary["pretrain_loss"] = pretrain(model, tasks, recipe.pretrain, recipe.optim, tokenizer, recipe.seed)
        summary["pretrain_seconds"] = round(time.monotonic() - start, 1)
        model.save_pretrained(output / "pretrained")
    toy = all(swe_toy.is_toy_task(t) for t in tasks)
    reference = copy.deepcopy(model).eval() if rl.kl_coef else None
    optimizer = policy_optimizer(model, recipe.optim)
    schedule = warmup_schedule(optimizer, rl.warmup_updates)
    factory = EnvFactory(ro.engine, workers=ro.workers, max_turns=rl.max_turns, test_timeout_s=ro.test_timeout_s,
                         instructions=swe_toy.TOOLS_LINE, verify_cache={})
    writer = MetricsWriter(output, truncate_after=0, title="multi-turn GRPO on SWE tasks")
    generator = torch.Generator().manual_seed(recipe.seed)
    shuffle = torch.Generator().manual_seed(recipe.seed + 1) if rl.shuffle_rewards else None
    codec = TurnCodec(tokenizer)
    try:
        with ThreadPoolExecutor(ro.workers) as pool:
            if toy:
                summary["right_fix_p_before"] = swe_toy.right_fix_probability(model.eval(), tasks, tokenizer)
            if recipe.eval_samples:
                summary["before"] = scores(model, codec, factory, tasks, pool, recipe, seed=recipe.seed + 2)
            for step in range(1, recipe.steps + 1):
                record = {"step": step, **rl_step(model, optimizer, codec, factory, tasks, rl, recipe.optim, pool,
                                                  generator, shuffle, reference, schedule, demos)}
                if toy:
                    record["right_fix_p"] = swe_toy.right_fix_probability(model.eval(), tasks, tokenizer)
                writer.log(record)
                print(f"swe-rl step {step}/{recipe.steps}: resolved {record['resolved_rate']:.3f} "
                      f"kept {record['kept_trajectories']} loss {record['loss']:.4f} ({record['seconds']:.1f}s)",
                      flush=True)
            if recipe.eval_samples:
                summary["after"] = scores(model, codec, factory, tasks, pool, recipe, seed=recipe.seed + 3)
    finally:
        factory.shutdown()
    records = writer.records
    if records:
        plot_records({"control" if rl.shuffle_rewards else "GRPO": records}, output / "reward.png")
    summary["steps"] = len(records)
    model.save_pretrained(output / "policy")
    write_summary(output, summary)
    return records
