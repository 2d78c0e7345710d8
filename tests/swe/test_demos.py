"""Supervised learning on the toy demonstrations (swe/demos.py): the pre-training batches and the PPO-ptx
term that every policy update of swe-tiny adds, in the GRPO run and its control alike."""

import copy
from types import SimpleNamespace

import pytest
import torch

from iquest_core.data.chat import render_chat
from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.jsonl import write_jsonl
from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.rl.multiturn import Trajectory
from iquest_core.swe import train as swe_train
from iquest_core.swe.demos import DemoLoss, demo_batch
from iquest_core.swe.env import StepResult
from iquest_core.swe.grpo import policy_update, token_logprobs
from iquest_core.swe.recipe import MultiTurnGRPO, load_swe_recipe
from iquest_core.swe.toy import OPERATORS, ByteChatTokenizer, demonstration
from iquest_core.train.schema import Optim
from tests.swe.test_toy import toy_task

TOKENIZER = ByteChatTokenizer()
TOY = [toy_task(f"{op}_{k}") for op in OPERATORS for k in (2, 3)]


def _demo_loss(weight: float = 0.5) -> DemoLoss:
    return DemoLoss(TOY, weight=weight, rows=3, correct_share=0.1, seed=0, tokenizer=TOKENIZER)


def test_demo_batch_labels_exactly_the_assistant_tokens():
    demos = [render_chat(demonstration(TOY[i], op), TOKENIZER) for i, op in ((0, "+"), (5, "**"))]
    ids, labels = demo_batch(demos)
    for row, (seq, mask) in enumerate(demos):
        assert ids[row, :len(seq)].tolist() == seq and not ids[row, len(seq):].any()
        learned = [i for i in range(len(seq) - 1) if labels[row, i] != IGNORE_INDEX]
        assert learned == [i - 1 for i in range(1, len(seq)) if mask[i]]
        assert all(labels[row, i] == seq[i + 1] for i in learned)
    assert (labels[0, len(demos[0][0]) - 1:] == IGNORE_INDEX).all()


def test_demo_loss_draws_a_fresh_reproducible_batch_each_time():
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=128)).eval()
    first = _demo_loss()
    with torch.no_grad():
        values = [first.unweighted(model).item() for _ in range(3)]
        again = _demo_loss()
        assert again.unweighted(model).item() == values[0] and first.drawn == 3
    assert len(set(values)) == 3


def test_demo_loss_needs_toy_tasks():
    with pytest.raises(ValueError, match=r"rl\.ptx_coef"):
        DemoLoss([*TOY, toy_task("div_2")], weight=0.3, rows=2, correct_share=0.1, seed=0, tokenizer=TOKENIZER)


def test_the_update_adds_weight_times_the_demonstrations_gradient():
    """One SGD step (lr 1, no clipping) with the ptx term at weight 0.5 differs from the plain GRPO step by
    exactly -0.5 x the gradient of the next-token loss on the demonstrations' first batch."""
    torch.manual_seed(0)
    policy = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=128)).eval()
    kept = []
    for operator, advantage in (("+", 1.0), ("-", -1.0)):
        ids, mask = render_chat(demonstration(TOY[0], operator), TOKENIZER)
        with torch.no_grad():
            old = token_logprobs(policy, torch.tensor([ids]), 1.0)[0].tolist()
        kept.append((Trajectory(0, ids, list(mask), old, prompt_len=mask.index(True)), advantage))
    rl = MultiTurnGRPO(temperature=1.0, epochs=1, minibatch=2)

    def step(demos):
        model = copy.deepcopy(policy)
        stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=1.0), kept, rl, Optim(max_grad_norm=1e9),
                              torch.Generator().manual_seed(0), demos=demos)
        return model, stats

    demos = _demo_loss(0.5)
    with_ptx, stats = step(demos)
    plain, plain_stats = step(None)
    assert demos.drawn == 1 and "ptx_loss" in stats and "ptx_loss" not in plain_stats
    assert stats["loss"] == plain_stats["loss"]  # the GRPO loss itself is reported unchanged

    reference = copy.deepcopy(policy).train()
    auxiliary = _demo_loss().unweighted(reference)
    assert auxiliary.item() == pytest.approx(stats["ptx_loss"], rel=1e-6)
    auxiliary.backward()
    moved = 0
    for (name, a), b, r in zip(with_ptx.named_parameters(), plain.parameters(), reference.parameters()):
        expected = -0.5 * r.grad if r.grad is not None else torch.zeros_like(a)
        torch.testing.assert_close(a.detach() - b.detach(), expected, rtol=1e-4, atol=1e-6, msg=name)
        moved += bool(expected.abs().max() > 1e-6)
    assert moved > 0


class AlternatingEnvs:
    """An EnvFactory stand-in: one-turn environments whose episodes are resolved in every other one made,
    whatever the agent does (so every group has rewards to learn from)."""

    def __init__(self, *_, **__):
        self.made = 0

    def make(self, task):
        self.made += 1
        return SimpleNamespace(reset=lambda: "fix it", close=lambda: None, step=lambda action, won=self.made % 2: (
            StepResult("", float(won), True, {"resolved": bool(won)})))

    def shutdown(self):
        pass


@pytest.mark.parametrize("control", [False, True])
def test_every_update_of_the_run_and_of_its_control_adds_the_ptx_loss(tmp_path, monkeypatch, control):
    monkeypatch.setattr(swe_train, "EnvFactory", AlternatingEnvs)
    write_jsonl(tmp_path / "tasks.jsonl", [t.to_dict() for t in TOY])
    overrides = [f"tasks={tmp_path / 'tasks.jsonl'}", "steps=2", "pretrain.steps=1", "pretrain.batch=2",
                 "eval_samples=0", "model.hidden_size=32", "rl.prompts_per_step=2", "rl.group_size=2",
                 "rl.max_new_tokens=4", "rl.max_tokens=8", "rl.minibatch=2", f"rl.shuffle_rewards={str(control).lower()}"]
    records = swe_train.train_swe(load_swe_recipe("swe-tiny", overrides), tmp_path / "run")
    assert [r["kept_trajectories"] for r in records] == [4, 4]
    assert all(r["ptx_loss"] > 0 for r in records)
    plain = swe_train.train_swe(load_swe_recipe("swe-tiny", [*overrides, "rl.ptx_coef=0"]), tmp_path / "plain")
    assert all("ptx_loss" not in r for r in plain)
