"""`iquest swe rollout`: a policy's (or a scripted agent's) trajectories on tasks, scored as in training.

    iquest swe rollout tasks.jsonl --model HF_DIR --output DIR [--group G] [--max-turns T] [--engine ray]

The model directory's tokenizer (tokenizer.json) is used, or the byte chat tokenizer for a 128-id
vocabulary. Writes DIR/trajectories.jsonl (instance_id, replies, r_test, resolved, reward, turns,
generated tokens, error) and DIR/summary.json {"trajectories", "resolved_rate", "mean_r_test", "unscored"}.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import write_jsonl
from iquest_core.rl.multiturn import RolloutLimits, TurnCodec, rollout
from iquest_core.swe.engines import EnvFactory
from iquest_core.swe.grpo import score_groups
from iquest_core.swe.tasks import Task
from iquest_core.swe.toy import ByteChatTokenizer


def load_policy(model_dir: str | Path):
    """(model, tokenizer) of a Hugging Face directory."""
    from iquest_core.data.tokenizer import load_tokenizer
    from iquest_core.model import LoopCoderForCausalLM

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ValueError(f"--model: no config.json in {model_dir}")
    model = LoopCoderForCausalLM.from_pretrained(path).eval()
    if (path / "tokenizer.json").is_file():
        return model, load_tokenizer(path)
    if model.config.vocab_size == ByteChatTokenizer.vocab_size:
        return model, ByteChatTokenizer()
    raise ValueError(f"--model: no tokenizer.json in {model_dir} and the vocabulary is not the byte chat one")


def rollout_tasks(model, tokenizer, tasks: list[Task], output: str | Path, *, group: int = 4, max_turns: int = 10,
                  limits: RolloutLimits | None = None, engine: str = "local", workers: int = 2, seed: int = 0,
                  instructions: str | None = None) -> dict:
    """group trajectories per task into output (see the module doc); returns the summary."""
    output = Path(output)
    options = {"max_turns": max_turns, **({"instructions": instructions} if instructions is not None else {})}
    factory = EnvFactory(engine, workers=workers, **options)
    indices = [i for i in range(len(tasks)) for _ in range(group)]
    limits = limits or RolloutLimits()
    try:
        envs = [factory.make(tasks[i]) for i in indices]
        with ThreadPoolExecutor(workers) as pool:
            trajectories = rollout(model, TurnCodec(tokenizer), envs, indices, limits, pool,
                                   torch.Generator().manual_seed(seed))
        for env in envs:
            env.close()
    finally:
        factory.shutdown()
    if group >= 2:
        score_groups(trajectories, group, max_turns=max_turns, max_tokens=limits.max_tokens)
    records = [{"instance_id": tasks[t.task_index].instance_id, "replies": t.replies, "r_test": t.r_test,
                "resolved": t.resolved, "reward": t.reward, "turns": t.turns, "generated": t.generated,
                "error": t.error} for t in trajectories]
    summary = {"trajectories": len(records), "resolved_rate": sum(t.resolved for t in trajectories) / len(records),
               "mean_r_test": sum(t.r_test or 0.0 for t in trajectories) / len(records),
               "unscored": sum(t.r_test is None for t in trajectories)}
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "trajectories.jsonl", records)
    write_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
