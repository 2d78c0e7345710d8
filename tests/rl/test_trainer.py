"""The toy task set and its rewards, rollouts, the policy update, the RL recipe and `iquest rl` end to end."""

from __future__ import annotations

import dataclasses
import itertools
import json

import pytest
import torch

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.rl import cli as rl_cli, grpo as rl, tasks as rl_tasks
from iquest_core.rl.recipe import GRPO, load_rl_recipe
from iquest_core.train.metrics import read_metrics
from iquest_core.train.recipe import RecipeError
from iquest_core.train.schema import Optim
from tests.rl.scored_pair import scored_pair

TASKS = rl_tasks.toy_tasks()


@pytest.fixture(scope="module")
def reward():
    return rl_tasks.TestPassReward(workers=2, timeout_s=2.0)


def _policy(seed: int = 0) -> LoopCoderForCausalLM:
    torch.manual_seed(seed)
    return LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=rl_tasks.VOCAB_SIZE, eos_token_id=0))


def test_toy_tasks_are_consistent():
    assert len(TASKS) == 81 and len({t.prompt for t in TASKS}) == 81
    assert {tuple(t.prompt.split()[1:9:2]) for t in TASKS} == set(itertools.product(rl_tasks.OPERATIONS, repeat=4))
    assert len({len(t.prompt) for t in TASKS}) == 1  # one prompt length: batched generation needs no padding
    for task in TASKS:
        scope = {}
        exec(task.prompt + task.solution, scope)
        for test in task.tests:
            exec(test, scope)
    assert rl_tasks.decode(rl_tasks.encode("x + 1") + [rl_tasks.EOS_ID, 65]) == "x + 1"
    with pytest.raises(ValueError, match="text"):
        rl_tasks.encode("caf\u00e9")


def test_demonstrations_teach_the_format_and_constants_but_not_the_operations():
    """Each slot's operation is uniform over the 3 whatever the prompt names: right 1/3 of the time for every
    name, so the names carry no information; the constants are always the prompt's."""
    pairs = rl_tasks.demonstrations(TASKS, 3000, seed=1)
    solutions = {t.prompt: t.solution.split(", ") for t in TASKS}
    right = {name: [0, 0] for name in rl_tasks.OPERATIONS}
    for prompt, completion in pairs:
        names, constants = prompt.split()[1:9:2], prompt.replace(",", "").split()[2:9:2]
        for slot, (body, name, k) in enumerate(zip(completion.split(", "), names, constants)):
            assert body.split()[-1] == k and body in [b.format(k=k) for b in rl_tasks.OPERATIONS.values()]
            right[name][0] += body == solutions[prompt][slot]
            right[name][1] += 1
    for name, (hits, total) in right.items():
        assert abs(hits / total - 1 / 3) < 0.03, (name, hits, total)
    whole = sum(c == ", ".join(solutions[p]) for p, c in pairs) / len(pairs)
    assert whole < 0.03  # 1/81 expected
    assert pairs == rl_tasks.demonstrations(TASKS, 3000, seed=1)


def test_rewards_are_shares_of_tests_passed_and_bad_programs_score_zero(reward):
    task = next(t for t in TASKS if t.prompt.startswith("# add 8, sub 3, add 7, sub 2"))
    assert task.solution == "x + 8, x - 3, x + 7, x - 2"
    completions = [task.solution, "x + 8, x - 3, x + 7, x + 2", "x * 8, x + 3, x - 7, x - 2", "x + 8",
                   "x - 8, x + 3, x - 7, x + 2", "x +", "(lambda: [0 for _ in iter(int, 1)])()",
                   "__import__('os')._exit(0)", "__import__('sys').stdout.buffer.write(bytes(range(256)))",
                   "__import__('ctypes').string_at(0)",
                   "(x + 8, 0, 0, 0) if print('" + reward.__class__.__name__ + " 12') else (x + 8, 0, 0, 0)"]
    scores = reward([task.prompt] * len(completions), completions, [task.tests] * len(completions))
    # each right slot is 3 of the 12 tests (no two operations agree on x = -9, 17, 19); "x + 8" alone is
    # not a tuple (every test fails); a printed count without the run's random tag is ignored
    assert scores == [1.0, 0.75, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]
    assert len(reward.cache) >= len(completions)


def test_rollout_masks_stop_at_the_first_eos(reward):
    model = _policy()
    cfg = GRPO(group_size=4, max_new_tokens=10, temperature=1.0, top_p=0.9, overlong_cache=3)
    batch = rl.rollout(model, TASKS, [0, 5], reward, cfg, torch.Generator().manual_seed(0))
    prompt_len = len(TASKS[0].prompt)
    assert batch.ids.shape == (8, prompt_len + 10) and batch.mask.shape == (8, 10)
    assert batch.tasks == [0] * 4 + [5] * 4
    response = batch.ids[:, prompt_len:]
    for row in range(8):
        eos = (response[row] == rl_tasks.EOS_ID).nonzero()
        length = int(eos[0]) + 1 if len(eos) else 10
        assert batch.mask[row].tolist() == [True] * length + [False] * (10 - length)
        penalty = rl.overlong_penalty(torch.tensor([length if len(eos) else 11]), 10, 3).item()
        assert batch.rewards[row].item() == pytest.approx(batch.passed[row].item() + penalty)


class _Scripted:
    """A stand-in policy whose greedy output for each prompt is a given completion."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def eval(self):
        return self

    def generate(self, prompts, max_new_tokens, **kwargs):
        rows = []
        for prompt in prompts.tolist():
            answer = rl_tasks.encode(self.answers[rl_tasks.decode(prompt)]) + [rl_tasks.EOS_ID]
            rows.append(prompt + (answer + [rl_tasks.EOS_ID] * max_new_tokens)[:max_new_tokens])
        return torch.tensor(rows)


def test_greedy_scores_every_task(reward):
    tasks = TASKS[:5]
    assert rl.greedy_scores(_Scripted({t.prompt: t.solution for t in tasks}), tasks, reward, 32) == \
        {"pass_rate": 1.0, "solved": 1.0}
    mixed = {t.prompt: t.solution if i % 2 else t.solution.split(", ")[0] + ", x +" for i, t in enumerate(tasks)}
    assert rl.greedy_scores(_Scripted(mixed), tasks, reward, 32) == {"pass_rate": pytest.approx(2 / 5),
                                                                     "solved": pytest.approx(2 / 5)}
    one_slot = {t.prompt: t.solution.split(", ")[0] + ", 0" for t in tasks}
    assert rl.greedy_scores(_Scripted(one_slot), tasks, reward, 32)["solved"] == 0.0


def test_policy_update_raises_the_likelihood_of_the_rewarded_sample():
    model = _policy(1)
    pair, prompt_len = scored_pair()
    ids, mask, kept = pair.ids, pair.mask, [pair]
    cfg = GRPO(group_size=2, temperature=1.0, epochs=3, minibatch=2, eps_low=0.2, eps_high=0.28)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def seq_logprob():
        with torch.no_grad():
            return (rl.sequence_logprobs(model, ids, prompt_len, 1.0) * mask).sum(1)

    before = seq_logprob()
    stats = rl.policy_update(model, optimizer, kept, cfg, Optim(max_grad_norm=1.0), prompt_len,
                             torch.Generator().manual_seed(0))
    after = seq_logprob()
    assert after[0] > before[0] and after[1] < before[1]
    assert 0.0 <= stats["clip_frac"] <= 1.0 and stats["grad_norm"] > 0


def test_rl_recipe_loads_and_rejects_unknown_keys(tmp_path):
    recipe = load_rl_recipe("rl", ["rl.group_size=4", "model.hidden_size=32", "optim.lr=1e-4"])
    assert recipe.rl.group_size == 4 and recipe.model.config["hidden_size"] == 32 and recipe.optim.lr == 1e-4
    assert recipe.rl.eps_low == 0.2 and recipe.rl.eps_high == 0.28
    for bad, match in ((["rl.no_such=1"], "rl.no_such"), (["rl.group_size=1"], "group_size"),
                       (["rl.group_size=two"], "group_size"), (["steps"], "key=value"),
                       (["rl.overlong_cache=32"], "overlong_cache")):
        with pytest.raises(RecipeError, match=match):
            load_rl_recipe("rl", bad)
    with pytest.raises(RecipeError, match="recipe"):
        load_rl_recipe("tiny")
    custom = tmp_path / "mine.toml"
    custom.write_text("steps = 3\n[rl]\ntemperature = 0.7\n")
    assert load_rl_recipe(str(custom)).rl.temperature == 0.7


def test_iquest_rl_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    settings = ["--set", "pretrain.steps=4", "--set", "pretrain.batch=8", "--set", "rl.prompts_per_step=2",
                "--set", "rl.group_size=4", "--set", "rl.max_new_tokens=10", "--set", "rl.minibatch=4",
                "--set", "checkpoint_every=1", "--set", "sandbox.workers=2", "--set", "sandbox.timeout_s=2.0",
                "--set", "greedy_eval=false"]
    assert rl_cli.main(["--recipe", "rl", "--output", str(out), "--set", "steps=2", *settings]) == 0
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["pass_rate"] <= 1.0 and -1.0 <= record["reward"] <= 1.0
        assert 0 <= record["kept_groups"] <= 2
    for name in ("reward.png", "loss.png", "summary.json", "policy/config.json", "pretrained/config.json",
                 "checkpoints/step-2/trainer.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and "greedy_after" not in summary
    assert rl_cli.main(["--recipe", "rl", "--output", str(out), "--set", "steps=3", "--resume", *settings]) == 0
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    assert "GRPO: tasks solved" in capsys.readouterr().out


def test_shuffle_rewards_permutes_inside_each_group_only():
    rewards = [torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 0.75, 0.75],
                                                                                       dtype=torch.float64)]
    kept = [rl.Rollout(torch.zeros(4, 1), torch.ones(4, 1, dtype=torch.bool), r.clone(), r.clone(), [g] * 4)
            for g, r in enumerate(rewards)]
    rl.shuffle_rewards(kept, torch.Generator().manual_seed(0))
    for group, original in zip(kept, rewards):
        assert sorted(group.rewards.tolist()) == sorted(original.tolist())
        assert torch.equal(group.passed, original)  # the metrics keep what each sample really earned
    assert not torch.equal(kept[0].rewards, rewards[0])


def test_iquest_rl_control_starts_from_the_same_policy_and_rollout(tmp_path, capsys):
    """`--control`: the control run loads the GRPO run's pre-trained policy and draws the same first
    rollout (same seed); only the update differs, because the rewards are shuffled."""
    out = tmp_path / "run"
    settings = ["--set", "pretrain.steps=4", "--set", "pretrain.batch=8", "--set", "rl.prompts_per_step=2",
                "--set", "rl.group_size=4", "--set", "rl.minibatch=4", "--set", "steps=1",
                "--set", "sandbox.workers=2", "--set", "sandbox.timeout_s=5.0", "--set", "greedy_eval=false"]
    assert rl_cli.main(["--recipe", "rl", "--output", str(out), *settings, "--control"]) == 0
    trained, control = read_metrics(out), read_metrics(out / "control")
    same = ("reward", "pass_rate", "solved", "response_len", "kept_groups")
    assert {k: trained[0][k] for k in same} == {k: control[0][k] for k in same}
    if trained[0]["kept_groups"]:
        assert trained[0]["loss"] != control[0]["loss"]
    assert not (out / "control" / "pretrained").exists()  # loaded from the GRPO run's, not trained again
    assert (out / "reward.png").is_file() and "control (rewards shuffled in each group)" in capsys.readouterr().out
    assert rl_cli.main(["--recipe", "rl", "--output", str(tmp_path / "x"), "--set", "rl.shuffle_rewards=true",
                        "--control"]) == 2
    assert "--control" in capsys.readouterr().err


def test_iquest_rl_reports_bad_recipes(tmp_path, capsys):
    assert rl_cli.main(["--recipe", "rl", "--output", str(tmp_path), "--set", "model.vocab_size=64"]) == 2
    assert "vocab_size" in capsys.readouterr().err


def test_dynamic_sampling_keeps_only_groups_with_unequal_rewards(monkeypatch):
    group, rounds = 4, []
    signal = {t.prompt for t in TASKS[1::2]}  # these tasks' groups get rewards 0, 1, 0, 1; the others all 0.5

    def fake_rollout(model, tasks, task_ids, reward, cfg, generator):
        rounds.append([tasks[t].prompt in signal for t in task_ids])
        rewards = torch.tensor([float(i % 2) if tasks[t].prompt in signal else 0.5 for t in task_ids
                                for i in range(group)], dtype=torch.float64)
        rows = [t for t in task_ids for _ in range(group)]
        return rl.Rollout(torch.tensor(rows)[:, None], torch.ones(len(rows), 1, dtype=torch.bool), rewards, rewards,
                          rows)

    monkeypatch.setattr(rl, "rollout", fake_rollout)
    cfg = GRPO(group_size=group, prompts_per_step=3, dynamic_sampling_rounds=50)
    first, kept = rl._collect(None, TASKS, None, cfg, torch.Generator().manual_seed(0))
    assert len(first.tasks) == 3 * group  # the first round, unfiltered, for the step's metrics
    assert len(kept) == 3 and all(k.rewards.std() > 0 and len(set(k.tasks)) == 1 for k in kept)
    assert all(TASKS[k.tasks[0]].prompt in signal for k in kept)
    assert sum(map(sum, rounds)) >= 3 > sum(map(sum, rounds[:-1]))  # stops at the round that completes the batch
    rounds.clear()
    _, kept = rl._collect(None, TASKS[::2], None, dataclasses.replace(cfg, dynamic_sampling_rounds=2),
                          torch.Generator().manual_seed(0))
    assert kept == [] and len(rounds) == 2  # no signal anywhere: gives up after the allowed rounds
