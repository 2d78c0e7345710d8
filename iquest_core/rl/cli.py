"""`iquest rl`: GRPO / DAPO reinforcement learning with test-pass rewards on the bundled toy task set.

    iquest rl --recipe NAME_OR_TOML --output DIR [--set key=value ...] [--resume] [--control]

Bundled recipe: rl (iquest_core/train/recipes/rl.toml; every key with its doc: rl/recipe.py). Writes DIR/metrics.jsonl
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
from iquest_core.rl.recipe import RLRecipe, load_rl_recipe

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
