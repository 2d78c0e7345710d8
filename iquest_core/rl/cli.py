"""`iquest rl`: GRPO / DAPO reinforcement learning with test-pass rewards on the bundled toy task set.

    iquest rl --recipe NAME_OR_TOML --output DIR [--set key=value ...] [--resume] [--control]

Bundled recipe: rl (iquest_core/train/recipes/rl.toml; every key with its doc: RLRecipe below). Writes DIR/metrics.jsonl
(one line per RL step: solved, pass_rate, reward, kept_groups, loss, clip_frac, ...), DIR/reward.png,
DIR/loss.png, DIR/checkpoints/step-N, DIR/policy (Hugging Face layout) and DIR/summary.json.
--control then runs the control into DIR/control: the same recipe, seed and steps from the same
pre-trained policy, with rewards shuffled inside each group; DIR/reward.png shows both runs.
Other recipe families plug in as RecipeFamily (the `iquest rl` command also runs swe-tiny:
iquest_core.swe.train.SWE_FAMILY, multi-turn GRPO on SWE tasks).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iquest_core.command_line import CommandParser
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
    check_minimums(recipe, {"steps": 1, "rl.prompts_per_step": 1, "rl.group_size": 2, "rl.max_new_tokens": 1,
                            "rl.epochs": 1, "rl.minibatch": 1, "rl.dynamic_sampling_rounds": 1, "pretrain.steps": 0,
                            "pretrain.batch": 1, "sandbox.workers": 0, "data.seq_len": 1})
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


@dataclass(frozen=True)
class RecipeFamily:
    """A kind of recipe `iquest rl` runs: its bundled names and the `stage` a .toml of it declares, how to load
    one (name or path, overrides -> validated recipe, with rl.shuffle_rewards and model.init_from), train it
    (recipe, output, resume -> metric records), plot runs (label -> records, path), and the record key and
    name of the headline rate printed per run."""
    bundled: tuple[str, ...]
    stage: str
    load: Callable[[str, Sequence[str]], Any]
    train: Callable[[Any, Path, bool], list[dict]]
    plot: Callable[[dict[str, list[dict]], Path], Path]
    metric: str
    metric_name: str

    def names(self, name_or_path: str) -> bool:
        """Whether name_or_path is one of this family's bundled names or a .toml whose stage is self.stage."""
        if name_or_path in self.bundled:
            return True
        path = Path(name_or_path)
        try:
            return path.suffix == ".toml" and tomllib.loads(path.read_text()).get("stage") == self.stage
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return False


def _train_toy(recipe: RLRecipe, output: Path, resume: bool) -> list[dict]:
    from iquest_core.rl.grpo import train_rl
    return train_rl(recipe, output, resume=resume)


def _plot_toy(runs: dict[str, list[dict]], path: Path) -> Path:
    from iquest_core.rl.grpo import plot_rewards
    return plot_rewards(runs, path)


TOY = RecipeFamily(bundled=("rl",), stage="rl", load=load_rl_recipe, train=_train_toy, plot=_plot_toy,
                   metric="solved", metric_name="tasks solved")


def main(argv: list[str] | None = None, families: Sequence[RecipeFamily] = (TOY,)) -> int:
    """`iquest rl` over the given recipe families (the first is the default for a .toml of no known stage)."""
    parser = CommandParser(prog="iquest rl", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    bundled = [name for family in families for name in family.bundled]
    parser.add_argument("--recipe", required=True, help=f"a bundled name {bundled} or a .toml path")
    parser.add_argument("--output", required=True, help="run directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key by its dotted path (repeatable), e.g. rl.group_size=16")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in DIR")
    parser.add_argument("--control", action="store_true",
                        help="then the control (rewards shuffled inside each group) into DIR/control")
    args = parser.parse_args(argv)
    family = next((f for f in families if f.names(args.recipe)), families[0])
    output = Path(args.output)
    try:
        recipe = family.load(args.recipe, args.overrides)
        if args.control and (recipe.rl.shuffle_rewards or recipe.model.init_from):
            raise ValueError("--control: expected a recipe without rl.shuffle_rewards and model.init_from")
        runs = {"GRPO": family.train(recipe, output, args.resume)}
        if args.control:
            control = family.load(args.recipe, [*args.overrides, "rl.shuffle_rewards=true",
                                                f"model.init_from={output / 'pretrained'}"])
            runs["control (rewards shuffled in each group)"] = family.train(control, output / "control", args.resume)
    except ValueError as e:
        print(f"iquest rl: error: {e}", file=sys.stderr)
        return 2
    for label, records in runs.items():
        if records:
            print(f"{label}: {family.metric_name} {records[0][family.metric]:.3f} at step {records[0]['step']} -> "
                  f"{records[-1][family.metric]:.3f} at step {records[-1]['step']}")
    if args.control:
        family.plot(runs, output / "reward.png")
    print(f"plot {output / 'reward.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
