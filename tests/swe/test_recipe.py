"""The swe-tiny recipe: main's typed schema extended, and `iquest rl` running it through the command table."""

import json

import pytest
import torch

from iquest_core.cli import main as iquest
from iquest_core.jsonl import write_jsonl
from iquest_core.swe.grpo import warmup_schedule
from iquest_core.swe.recipe import SWERecipe, load_swe_recipe
from iquest_core.train.recipe import RecipeError
from iquest_core.train.schema import RunRecipe


def test_the_bundled_recipe_is_the_schema_default():
    """swe-tiny.toml and SWERecipe's Python defaults agree key for key."""
    assert load_swe_recipe("swe-tiny") == SWERecipe()


def test_warmup_raises_the_learning_rate_linearly_then_holds():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    schedule = warmup_schedule(optimizer, 4)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_recipe_extends_the_training_schema():
    recipe = load_swe_recipe("swe-tiny", ["rl.group_size=4", "optim.lr=1e-4", "rollout.engine=ray"])
    assert isinstance(recipe, SWERecipe) and isinstance(recipe, RunRecipe)
    assert recipe.stage == "swe-rl" and recipe.rl.group_size == 4 and recipe.optim.lr == 1e-4
    assert recipe.rollout.engine == "ray" and recipe.model.config["vocab_size"] == 128


@pytest.mark.parametrize("override, named", [("rl.group_size=1", "rl.group_size"), ("rl.turns=3", "rl.turns"),
                                             ("rollout.engine=docker", "rollout.engine"),
                                             ("pretrain.correct_share=2", "pretrain.correct_share"),
                                             ("rl.max_context=10", "rl.max_context"), ("rl.kl_coef=-1", "rl.kl_coef"),
                                             ("rl.ptx_coef=-1", "rl.ptx_coef"), ("rl.ptx_rows=0", "rl.ptx_rows")])
def test_bad_recipe_keys_are_named(override, named):
    with pytest.raises(RecipeError, match=named.replace(".", r"\.")):
        load_swe_recipe("swe-tiny", [override])


def test_iquest_rl_runs_swe_recipes_with_the_control(tasks, tmp_path, capsys):
    write_jsonl(tmp_path / "tasks.jsonl", [t.to_dict() for t in tasks[:1]])
    out = tmp_path / "run"
    settings = [f"tasks={tmp_path / 'tasks.jsonl'}", "steps=1", "pretrain.steps=0", "rl.prompts_per_step=1",
                "rl.group_size=2", "rl.max_turns=1", "rl.max_new_tokens=8", "rl.max_tokens=8", "model.hidden_size=32", "rl.kl_coef=0.1", "eval_samples=1",
                "rl.ptx_coef=0"]
    argv = ["rl", "--recipe", "swe-tiny", "--output", str(out), *(x for s in settings for x in ("--set", s))]
    assert iquest([*argv, "--control"]) == 0
    printed = capsys.readouterr().out
    assert "GRPO: resolved" in printed and "control (rewards shuffled in each group): resolved" in printed
    for run in (out, out / "control"):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1] and 0.0 <= records[0]["resolved_rate"] <= 1.0
    control = json.loads((out / "control" / "summary.json").read_text())
    assert control["shuffle_rewards"] is True and "pretrain_loss" not in control  # it starts from DIR/pretrained
    for summary in (json.loads((out / "summary.json").read_text()), control):
        assert set(summary["before"]) == set(summary["after"]) == {"greedy_resolved", "sampled_resolved",
                                                                    "sampled_valid_actions"}
    assert (out / "reward.png").is_file() and (out / "pretrained" / "config.json").is_file()
    assert iquest([*argv, "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_a_toml_with_the_swe_stage_is_an_swe_recipe(tmp_path, capsys):
    custom = tmp_path / "mine.toml"
    custom.write_text('stage = "swe-rl"\nsteps = 0\n')
    assert iquest(["rl", "--recipe", str(custom), "--output", str(tmp_path / "out")]) == 2
    assert "steps: expected >= 1" in capsys.readouterr().err and not (tmp_path / "out").exists()
