"""The `swe-tiny` recipe family (multi-turn GRPO on SWE tasks): the training recipe schema of
`iquest_core.train.schema` (RunRecipe: stage, steps, seed, model, optim) extended with the task source, the
supervised warm-up, multi-turn GRPO and the rollout engine. Every key has its doc; `load_swe_recipe` fills
it from a bundled name or a .toml and `--set` overrides and checks it (RecipeError names the key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iquest_core.rl.recipe import GroupSampling, Pretrain, check_minimums
from iquest_core.swe.engines import ENGINES
from iquest_core.train.recipe import RecipeError, read_recipe
from iquest_core.train.schema import ModelSection, Optim, RunRecipe, knob

BUNDLED = ("swe-tiny",)
STAGE = "swe-rl"


@dataclass
class SWEPretrain(Pretrain):
    correct_share: float = knob(0.1, "share of demonstrations that make the right fix; the others a wrong one")


@dataclass
class MultiTurnGRPO(GroupSampling):
    max_turns: int = knob(3, "actions per trajectory (then the environment submits)")
    max_tokens: int = knob(384, "tokens generated per trajectory (the efficiency cost's denominator)")
    max_context: int = knob(1200, "context length at which a trajectory ends")
    kl_coef: float = knob(0.0, "weight of the KL penalty to the policy RL started from (k3 estimate per token)")
    top_p: float = knob(0.95, "nucleus sampling in rollouts: a token far in the tail (a typo in the action's "
                              "format) is not sampled, whose push-down would dominate the update")
    warmup_updates: int = knob(12, "policy updates over which the learning rate rises linearly to optim.lr")
    ptx_coef: float = knob(1.0, "weight of the next-token loss on fresh demonstrations in every policy update "
                                "(PPO-ptx; toy tasks only; 0: none): it keeps the action format")
    ptx_rows: int = knob(8, "demonstrations per policy update for the ptx loss")


@dataclass
class Rollout:
    engine: Literal[ENGINES] = knob("local", "environments in a local thread pool or in Ray actors")
    workers: int = knob(2, "tool-call threads / Ray actors")
    test_timeout_s: float = knob(60.0, "seconds for the hidden tests of one trajectory")


@dataclass
class SWERecipe(RunRecipe):
    """Multi-turn GRPO of a policy on SWE tasks (the toy repository's when `tasks` is empty)."""
    stage: str = knob(STAGE, "a label written to metrics; a .toml with this stage runs as an SWE recipe")
    steps: int = knob(12, "RL steps")
    tasks: str = knob("", "a tasks.jsonl (iquest swe mine); empty: build and mine the toy repository")
    eval_samples: int = knob(4, "sampled trajectories per task in the evaluation before and after RL (with one "
                                "greedy each; 0: no evaluation)")
    model: ModelSection = knob(ModelSection(config={"vocab_size": 128}), "the policy (the byte chat vocabulary: 128 ids)")
    optim: Optim = knob(Optim(lr=5e-4, weight_decay=0.0, beta2=0.99), "the optimizer of the policy updates")
    pretrain: SWEPretrain = knob(SWEPretrain(steps=400, batch=8),
                                 "supervised warm-up on demonstrations (skipped with init_from)")
    rl: MultiTurnGRPO = knob(MultiTurnGRPO(prompts_per_step=12, max_new_tokens=128, temperature=0.8, epochs=1,
                                           minibatch=16), "multi-turn GRPO")
    rollout: Rollout = knob(Rollout(), "where the environments run")


def load_swe_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> SWERecipe:
    """The SWERecipe of a bundled name ("swe-tiny") or a .toml path and dotted key=value overrides."""
    recipe = read_recipe(name_or_path, overrides, schema=SWERecipe, bundled=BUNDLED)
    rl, pre = recipe.rl, recipe.pretrain
    check_minimums(recipe, {"steps": 1, "rl.prompts_per_step": 1, "rl.group_size": 2, "rl.max_turns": 1,
                            "rl.max_new_tokens": 1, "rl.max_tokens": 1, "rl.epochs": 1, "rl.minibatch": 1,
                            "pretrain.steps": 0, "eval_samples": 0, "pretrain.batch": 1, "rollout.workers": 1,
                            "rl.warmup_updates": 0, "rl.ptx_rows": 1})
    for key, value in (("rl.kl_coef", rl.kl_coef), ("rl.ptx_coef", rl.ptx_coef)):
        if value < 0:
            raise RecipeError(f"{key}: expected >= 0, got {value}")
    if not rl.temperature > 0:
        raise RecipeError(f"rl.temperature: expected > 0, got {rl.temperature}")
    if not 0 < rl.top_p <= 1:
        raise RecipeError(f"rl.top_p: expected in (0, 1], got {rl.top_p}")
    if not 0 <= pre.correct_share <= 1:
        raise RecipeError(f"pretrain.correct_share: expected in [0, 1], got {pre.correct_share}")
    if rl.max_context <= rl.max_new_tokens:
        raise RecipeError(f"rl.max_context: expected > rl.max_new_tokens ({rl.max_new_tokens}), got {rl.max_context}")
    return recipe
