"""The toy RL recipe (`iquest rl --recipe rl`): the training recipe schema of `iquest_core.train.schema`
(RunRecipe: stage, steps, seed, checkpoints, model, optim) extended with the task set, the supervised
warm-up, GRPO, the reward's sandbox and replay. Every key has its doc (`train.recipe.explain(RLRecipe)`
prints them); `load_rl_recipe` fills it from a bundled name or a .toml and `--set` overrides and checks it
(RecipeError names the key). GroupSampling, Pretrain and check_minimums are
shared with the SWE recipes (iquest_core.swe.recipe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iquest_core.rl.replay import rows_per_update
from iquest_core.train.recipe import RecipeError, check_replay, read_recipe
from iquest_core.train.schema import Optim, Replay, RunRecipe, knob


@dataclass
class Pretrain:
    steps: int = knob(300, "supervised steps on demonstrations before RL (0: none)")
    batch: int = knob(64, "demonstrations per supervised step")
    lr: float = knob(3e-3, "learning rate of the supervised steps")


@dataclass
class GroupSampling:
    """The GRPO fields every RL recipe shares: groups, sampling, clipped policy updates, the control."""
    prompts_per_step: int = knob(8, "tasks per RL step")
    group_size: int = knob(8, "sampled completions per task (>= 2: advantages are relative to the group)")
    max_new_tokens: int = knob(32, "completion length cap (per turn in multi-turn recipes)")
    temperature: float = knob(1.0, "sampling temperature (> 0)")
    epochs: int = knob(2, "policy-update passes over each step's rollouts")
    minibatch: int = knob(32, "rows per policy-update minibatch")
    eps_low: float = knob(0.2, "clip-higher: lower clip range")
    eps_high: float = knob(0.28, "clip-higher: upper clip range")
    shuffle_rewards: bool = knob(False, "the control: rewards permuted at random inside each group")


@dataclass
class GRPO(GroupSampling):
    overlong_cache: int = knob(4, "DAPO soft overlong punishment window (< max_new_tokens)")
    top_p: float = knob(1.0, "nucleus sampling (0, 1]")
    dynamic_sampling_rounds: int = knob(3, "DAPO dynamic sampling: resampling rounds for all-equal groups")


@dataclass
class Sandbox:
    workers: int = knob(0, "parallel sandboxes for the test-pass reward (0: CPU count)")
    timeout_s: float = knob(5.0, "seconds per judged completion")


@dataclass
class RLData:
    replay: Replay = knob(Replay(), "auxiliary next-token loss on earlier stages' data (rl/replay.py): "
                                    "round(share x rl.minibatch) rows per policy update, x weight (0: none)")
    tokenizer: str = knob("", "tokenizer directory of the replay text ('': the toy tasks' byte vocabulary)")
    seq_len: int = knob(128, "tokens per packed replay row")


@dataclass
class RLRecipe(RunRecipe):
    """The RL recipe: the common training fields (stage, steps, seed, checkpoints, model, optim) and GRPO's."""
    stage: str = knob("rl", "a label written to metrics and checkpoints")
    steps: int = knob(60, "RL steps")
    optim: Optim = knob(Optim(lr=1e-3, weight_decay=0.0, beta2=0.99), "the optimizer of the policy updates")
    greedy_eval: bool = knob(True, "greedy pass rate before and after RL in summary.json")
    slots: int = knob(4, "operations per toy task (rl/tasks.py): 3 ** slots tasks")
    pretrain: Pretrain = knob(Pretrain(), "supervised warm-up on the task family")
    rl: GRPO = knob(GRPO(), "GRPO / DAPO")
    sandbox: Sandbox = knob(Sandbox(), "the reward's sandbox")
    data: RLData = knob(RLData(), "replay of earlier stages' data")


def load_rl_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> RLRecipe:
    """The RLRecipe of a bundled name ("rl") or a .toml path and dotted key=value overrides, with the
    training recipes' rules (unknown keys and wrong types raise RecipeError naming the key)."""
    recipe = read_recipe(name_or_path, overrides, schema=RLRecipe, bundled=("rl",))
    _validate(recipe)
    return recipe


def check_minimums(recipe: Any, minimums: dict[str, float]) -> None:
    """RecipeError naming the first dotted key of recipe whose value is below its minimum."""
    for dotted, low in minimums.items():
        value = recipe
        for name in dotted.split("."):
            value = getattr(value, name)
        if value < low:
            raise RecipeError(f"{dotted}: expected >= {low}, got {value}")


def _validate(recipe: RLRecipe) -> None:
    rl = recipe.rl
    check_minimums(recipe, {"steps": 1, "slots": 1, "rl.prompts_per_step": 1, "rl.group_size": 2,
                            "rl.max_new_tokens": 1, "rl.epochs": 1, "rl.minibatch": 1, "rl.dynamic_sampling_rounds": 1,
                            "pretrain.steps": 0, "pretrain.batch": 1, "sandbox.workers": 0, "data.seq_len": 1})
    if not 0 <= rl.overlong_cache < rl.max_new_tokens:
        raise RecipeError(f"rl.overlong_cache: expected 0 <= overlong_cache < max_new_tokens, got {rl.overlong_cache}")
    if not rl.temperature > 0 or not 0 < rl.top_p <= 1:
        raise RecipeError(f"rl.temperature, rl.top_p: expected > 0 and (0, 1], got {rl.temperature}, {rl.top_p}")
    if not 0 <= rl.eps_low < 1 or rl.eps_high < 0:
        raise RecipeError(f"rl.eps_low, rl.eps_high: expected [0, 1) and >= 0, got {rl.eps_low}, {rl.eps_high}")
    check_replay(recipe.data.replay)
    try:
        rows_per_update(recipe.data.replay.share, rl.minibatch)
    except ValueError as e:
        raise RecipeError(str(e)) from None
