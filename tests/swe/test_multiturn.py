import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from iquest_core.data.chat import render_chat
from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.rl.grpo import grpo_loss
from iquest_core.rl.multiturn import (RolloutLimits, Trajectory, TurnCodec, is_extension, parse_tool_call, rollout,
                                     sample_turns)
from iquest_core.swe.grpo import padded_batch, reference_kl, score_groups, token_logprobs
from iquest_core.swe.toy import ByteChatTokenizer
from iquest_core.swe import SWEEnv
from tests.swe.conftest import mathlib, tasks  # noqa: F401  (session fixtures shared with tests/swe)


@pytest.fixture(scope="module")
def trajectories(tasks):  # noqa: F811
    """Four 3-turn trajectories of an untrained tiny policy on a mined task (its replies are malformed
    actions, so each turn ends in an error observation and the turn limit ends the episode)."""
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny")).eval()
    codec = TurnCodec(ByteChatTokenizer())
    envs = [SWEEnv(tasks[0], max_turns=3) for _ in range(4)]
    with ThreadPoolExecutor(2) as pool:
        out = rollout(model, codec, envs, [0] * 4, RolloutLimits(max_new_tokens=12, temperature=1.0), pool,
                      torch.Generator().manual_seed(0))
    for env in envs:
        env.close()
    return model, codec, out


def test_mask_covers_exactly_the_generated_tokens(trajectories):
    _, codec, out = trajectories
    for t in out:
        assert t.turns == 3 and t.done and t.r_test == 0.0
        assert sum(t.mask) == t.generated > 0
        runs, current = [], []
        for token, own in zip(t.ids, t.mask):
            if own:
                current.append(token)
            elif current:
                runs.append(current)
                current = []
        runs += [current] if current else []
        decoded = [codec.tokenizer.decode(r[:-1] if r[-1] == codec.end else r) for r in runs]
        assert decoded == t.replies and len(runs) == 3


class ScriptedPolicy:
    """A stand-in model whose generate() types fixed replies (as token ids) in turn, for every row."""

    def __init__(self, replies, tokenizer, end_id):
        self.replies = [tokenizer.encode(r) + [end_id] for r in replies]
        self.calls = 0

    def generate(self, prompt, max_new_tokens, **kwargs):
        reply = torch.tensor(self.replies[self.calls % len(self.replies)])
        self.calls += 1
        ids = torch.cat([prompt, reply.expand(len(prompt), -1)], 1)
        return ids, torch.zeros(len(prompt), len(reply), 128)


def test_sequence_is_the_trainers_chat_template(tasks):  # noqa: F811
    """A policy typing the oracle's actions: the kept ids are render_chat of the same conversation, the
    mask is its assistant mask, the masked-in runs decode to exactly the typed replies, and it resolves."""
    task = tasks[0]
    codec = TurnCodec(ByteChatTokenizer())
    edit = {"name": "str_replace", "arguments": {"path": "mathlib/sub.py", "old": "a + b", "new": "a - b"}}
    replies = ["Fix the operator.\n<tool_call>\n" + json.dumps(edit) + "\n</tool_call>",
               '<tool_call>\n{"name": "view", "arguments": {"path": "mathlib/sub.py"}}\n</tool_call>',
               '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>']
    with ThreadPoolExecutor(1) as pool, SWEEnv(task) as env:
        [t] = rollout(ScriptedPolicy(replies, codec.tokenizer, codec.end), codec, [env], [0], RolloutLimits(), pool)
        first = SWEEnv(task).reset()
    assert t.resolved and t.r_test == 1.0 and t.turns == 3 and t.replies == replies
    messages = [{"role": "user", "content": first}, {"role": "assistant", "content": replies[0]},
                {"role": "tool", "content": "edited mathlib/sub.py"}, {"role": "assistant", "content": replies[1]},
                {"role": "tool", "content": "     1\tdef sub(a, b):\n     2\t    return a - b"},
                {"role": "assistant", "content": replies[2]}]
    ids, mask = render_chat(messages, codec.tokenizer)
    assert t.ids == ids[:-1] and ids[-1:] == codec.tokenizer.encode("\n")  # the last turn has no trailer yet
    assert t.mask == mask[:-1] and sum(t.mask) == t.generated == sum(len(r) + 1 for r in replies)


def test_old_logprobs_are_the_policys(trajectories):
    model, _, out = trajectories
    ids, mask, old = padded_batch(out)
    with torch.no_grad():
        new = token_logprobs(model, ids, 1.0)
    assert torch.allclose(new[mask], old[mask], atol=1e-4)
    assert (old[~mask] == 0).all()


def test_gradients_vanish_at_observation_positions(trajectories):
    model, _, out = trajectories
    ids, mask, old = padded_batch(out)
    logits = model(ids).logits.detach().requires_grad_(True)
    picked = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    new = torch.cat([picked.new_zeros(len(ids), 1), picked], 1)
    grpo_loss(new, old, torch.tensor([1.0, -1.0, 0.5, -0.5]), mask).backward()
    predicts = torch.cat([mask[:, 1:], torch.zeros(len(ids), 1, dtype=torch.bool)], 1)  # logits[t] predict t + 1
    assert (logits.grad[~predicts] == 0).all()
    assert (logits.grad[predicts].abs().sum(-1) > 0).all()


def test_prefix_check():
    assert is_extension([1, 2], [3], [1, 2, 3, 9])
    assert not is_extension([1, 2], [3], [1, 2, 4, 9]) and not is_extension([1, 2], [3], [1, 5, 3])
    assert not is_extension([1, 2], [3], [1, 2])


@pytest.mark.parametrize("text,expected", [
    ('x <tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
     {"tool": "bash", "command": "ls"}),
    ('<tool_call>{"name": "submit"}</tool_call>', {"tool": "submit"}),
    ("no call", "no <tool_call> in the reply"),
    ("<tool_call>{oops</tool_call>", "the tool call is not JSON (Expecting property name enclosed in double quotes)"),
    ('<tool_call>["bash"]</tool_call>', 'a tool call is {"name": TOOL, "arguments": {...}}'),
])
def test_parse_tool_call(text, expected):
    assert parse_tool_call(text) == expected


def _trajectory(r_test, resolved=False, turns=2, generated=100):
    return Trajectory(0, [1], [False], [0.0], 1, turns=turns, generated=generated, done=True, r_test=r_test,
                      resolved=resolved)


def test_groups_keep_scored_members_with_different_rewards():
    group_a = [_trajectory(1.0, True, 2, 50), _trajectory(1.0, True, 3, 150), _trajectory(0.0), _trajectory(None)]
    group_b = [_trajectory(1.0, True, 2, 50), _trajectory(1.0, True, 3, 300)] * 2  # r_test all equal: dropped
    kept = score_groups(group_a + group_b, 4, max_turns=3, max_tokens=400)
    assert [t for t, _ in kept] == group_a[:3] and group_a[3].reward is None
    advantages = [a for _, a in kept]
    assert advantages[0] > advantages[1] > 0 > advantages[2]
    shuffled = score_groups(group_a + group_b, 4, max_turns=3, max_tokens=400, shuffle=torch.Generator().manual_seed(1))
    assert sorted(a for _, a in shuffled) == pytest.approx(sorted(advantages))
    assert [a for _, a in shuffled] != pytest.approx(advantages)


def test_reference_kl_is_zero_at_the_reference_and_pulls_back_to_it():
    ref = torch.log(torch.tensor([[0.5, 0.9, 0.2]]))
    mask = torch.tensor([[False, True, True]])
    assert reference_kl(ref.clone(), ref, mask).item() == pytest.approx(0.0, abs=1e-7)
    moved = (ref + torch.tensor([[5.0, -0.5, 0.3]])).requires_grad_()
    kl = reference_kl(moved, ref, mask)
    kl.backward()
    assert kl.item() > 0 and moved.grad[0, 0] == 0  # the masked-out position counts for nothing
    assert moved.grad[0, 1] < 0 < moved.grad[0, 2]  # descent raises the lowered token and lowers the raised one
    half, quarter = torch.log(torch.tensor([[0.5]])), torch.log(torch.tensor([[0.25]]))
    k3 = 2 - math.log(2) - 1  # ref / policy = 2 at the sampled token
    assert reference_kl(quarter, half, torch.tensor([[True]])).item() == pytest.approx(k3)


def test_nucleus_sampling_keeps_the_whole_distributions_log_probs():
    """With a nucleus of one token, sampling is the greedy reply; the recorded log-probs are still those of
    the whole distribution at the temperature (what token_logprobs gives the loss), not 0."""
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny")).eval()
    context = [[1, *range(40, 60)]]
    got = {}

    def keep(name):
        return lambda indices, samples: got.__setitem__(name, samples[0])

    for name, temperature, top_p in (("greedy", 0.0, 1.0), ("nucleus", 0.7, 1e-6)):
        sample_turns(model, context, max_new_tokens=6, end_id=2, temperature=temperature, top_p=top_p,
                     generator=torch.Generator().manual_seed(0), on_batch=keep(name))
    assert got["nucleus"][0] == got["greedy"][0]
    ids = torch.tensor([context[0] + got["nucleus"][0]])
    expected = token_logprobs(model, ids, 0.7)[0, len(context[0]):]
    assert torch.allclose(torch.tensor(got["nucleus"][1]), expected, atol=1e-4)
    assert max(got["nucleus"][1]) < -1e-3
