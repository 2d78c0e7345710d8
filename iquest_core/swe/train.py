"""`iquest rl --recipe swe-tiny --output DIR`: multi-turn GRPO of a tiny policy on mined SWE tasks.

Without `tasks`, the toy repository (toy.py) is built into DIR/toy-repo and mined (head mode) into
DIR/tasks.jsonl; the policy (tiny preset, byte chat vocabulary) is first fitted briefly to noisy
two-turn demonstrations (the format, the right operator in pretrain.correct_share of them), then trained
with grpo.rl_step. Writes DIR/metrics.jsonl (resolved_rate, r_test, kept_trajectories, loss, ... per
step), DIR/reward.png (resolved rate per step), DIR/summary.json, DIR/policy (Hugging Face layout).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.jsonl import write_jsonl
from iquest_core.swe import toy as swe_toy
from iquest_core.rl.grpo import policy_optimizer
from iquest_core.rl.multiturn import RolloutLimits, TurnCodec
from iquest_core.swe.engines import EnvFactory
from iquest_core.swe.grpo import evaluate, rl_step, write_summary
from iquest_core.swe.plot import plot_records
from iquest_core.swe.recipe import SWERecipe
from iquest_core.train.schema import Optim
from iquest_core.train.step import train_step


def _tasks(cfg: dict, output: Path) -> list:
    from iquest_core.swe import load_tasks, mine_repository

    if cfg["tasks"]:
        return load_tasks(cfg["tasks"])
    if (output / "tasks.jsonl").is_file():
        return load_tasks(output / "tasks.jsonl")
    repo = output / "toy-repo"
    if not repo.exists():
        swe_toy.build_toy_repository(repo)
    tasks = mine_repository(repo, mode="head", workers=cfg["rollout"]["workers"]).tasks
    write_jsonl(output / "tasks.jsonl", [t.to_dict() for t in tasks])
    return tasks


def pretrain(model, tasks: list, cfg: dict, optim: Optim, tokenizer) -> float:
    """Supervised fit to noisy demonstrations (the loss on the assistant turns only); the last loss."""
    pre = cfg["pretrain"]
    demos = swe_toy.demonstrations(tasks, pre["steps"] * pre["batch"], correct_share=pre["correct_share"],
                                   seed=cfg["seed"], tokenizer=tokenizer)
    optimizer = policy_optimizer(model, optim, lr=pre["lr"])
    model.train()
    loss = math.nan
    for step in range(pre["steps"]):
        batch = demos[step * pre["batch"]:(step + 1) * pre["batch"]]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX)
        for row, (seq, mask) in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            learn = torch.tensor(mask[1:])
            labels[row, :len(seq) - 1] = torch.where(learn, torch.tensor(seq[1:]), IGNORE_INDEX)
        loss = train_step(model, optimizer, ids, labels, max_grad_norm=optim.max_grad_norm).loss
    return float(loss)


def scores(model, codec: TurnCodec, factory: EnvFactory, tasks: list, pool: ThreadPoolExecutor, cfg: dict, *,
           seed: int) -> dict[str, float]:
    """The policy's resolved share over all tasks, greedy (one trajectory each) and sampled (eval_samples each
    at rl.temperature), and the share of its sampled turns that were well-formed tool calls."""
    rl = cfg["rl"]
    generator = torch.Generator().manual_seed(seed)
    limits = [RolloutLimits(rl["max_new_tokens"], rl["max_tokens"], rl["max_context"], t) for t in (0.0, rl["temperature"])]
    greedy = evaluate(model, codec, factory, tasks, pool, samples=1, limits=limits[0], generator=generator)
    sampled = evaluate(model, codec, factory, tasks, pool, samples=cfg["eval_samples"], limits=limits[1],
                       generator=generator)
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
    cfg = dataclasses.asdict(recipe)  # the rollout and update helpers take plain tables
    torch.manual_seed(cfg["seed"])
    tokenizer = swe_toy.ByteChatTokenizer()
    config = model_config(recipe)
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"model.vocab_size: the byte chat vocabulary needs {tokenizer.vocab_size}, got "
                         f"{config.vocab_size}")
    tasks = _tasks(cfg, output)
    summary: dict[str, Any] = {"tasks": len(tasks), "shuffle_rewards": cfg["rl"]["shuffle_rewards"]}
    if cfg["model"]["init_from"]:
        model = LoopCoderForCausalLM.from_pretrained(cfg["model"]["init_from"])
    else:
        model = LoopCoderForCausalLM(config)
        start = time.monotonic()
        summary["pretrain_loss"] = pretrain(model, tasks, cfg, recipe.optim, tokenizer)
        summary["pretrain_seconds"] = round(time.monotonic() - start, 1)
        model.save_pretrained(output / "pretrained")
    rl, optim, ro = cfg["rl"], cfg["optim"], cfg["rollout"]
    reference = copy.deepcopy(model).eval() if rl["kl_coef"] else None
    optimizer = policy_optimizer(model, recipe.optim)
    factory = EnvFactory(ro["engine"], workers=ro["workers"], max_turns=rl["max_turns"],
                         test_timeout_s=ro["test_timeout_s"], instructions=swe_toy.TOOLS_LINE, verify_cache={})
    writer = MetricsWriter(output, truncate_after=0, title="multi-turn GRPO on SWE tasks")
    generator = torch.Generator().manual_seed(cfg["seed"])
    shuffle = torch.Generator().manual_seed(cfg["seed"] + 1) if rl["shuffle_rewards"] else None
    codec = TurnCodec(tokenizer)
    try:
        with ThreadPoolExecutor(ro["workers"]) as pool:
            if cfg["eval_samples"]:
                summary["before"] = scores(model, codec, factory, tasks, pool, cfg, seed=cfg["seed"] + 2)
            for step in range(1, cfg["steps"] + 1):
                record = {"step": step, **rl_step(model, optimizer, codec, factory, tasks, rl, optim, pool, generator,
                                                  shuffle, reference)}
                writer.log(record)
                print(f"swe-rl step {step}/{cfg['steps']}: resolved {record['resolved_rate']:.3f} "
                      f"kept {record['kept_trajectories']} loss {record['loss']:.4f} ({record['seconds']:.1f}s)",
                      flush=True)
            if cfg["eval_samples"]:
                summary["after"] = scores(model, codec, factory, tasks, pool, cfg, seed=cfg["seed"] + 3)
    finally:
        factory.shutdown()
    records = writer.records
    if records:
        plot_records({"control" if rl["shuffle_rewards"] else "GRPO": records}, output / "reward.png")
    summary["steps"] = len(records)
    model.save_pretrained(output / "policy")
    write_summary(output, summary)
    return records
