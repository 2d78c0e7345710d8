"""grpo_loss, group_advantages and the overlong penalty against plain formulas written out element by
element in float64, gradients checked, clip-higher verified on hand-made ratios."""

from __future__ import annotations

import math

import pytest
import torch

from iquest_core.rl.grpo import group_advantages, grpo_loss, overlong_penalty


def _reference_advantages(rewards: list[float], group: int) -> list[float]:
    out = []
    for g in range(0, len(rewards), group):
        chunk = rewards[g:g + group]
        mean = sum(chunk) / group
        std = math.sqrt(sum((r - mean) ** 2 for r in chunk) / (group - 1))
        out += [(r - mean) / (std + 1e-6) for r in chunk]
    return out


def _reference_loss(lp, old, adv, mask, eps_low, eps_high) -> float:
    total, count = 0.0, 0
    for b in range(len(lp)):
        for t in range(len(lp[b])):
            if mask[b][t]:
                a = adv[b] if not isinstance(adv[b], list) else adv[b][t]
                ratio = math.exp(lp[b][t] - old[b][t])
                clipped = min(max(ratio, 1 - eps_low), 1 + eps_high)
                total += -min(ratio * a, clipped * a)
                count += 1
    return total / count


@pytest.mark.parametrize("group", [2, 3, 8])
def test_group_advantages_match_the_formula(group):
    groups = int(torch.randint(1, 6, ()).item())
    rewards = torch.rand(groups * group, dtype=torch.float64)
    rewards[:group] = rewards[0]  # a group of equal rewards: advantages ~0 (the mean may be 1 ulp off), not NaN
    adv = group_advantages(rewards, group)
    expected = torch.tensor(_reference_advantages(rewards.tolist(), group), dtype=torch.float64)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    assert adv[:group].abs().max() < 1e-9
    assert adv.view(-1, group).sum(1).abs().max() < 1e-9


def test_group_advantages_keep_float32_and_reject_bad_input():
    assert group_advantages(torch.rand(6), 3).dtype == torch.float32
    for rewards, group, name in ((torch.rand(7), 3, "rewards"), (torch.rand(4, 2), 2, "rewards"),
                                 (torch.arange(4), 2, "rewards"), (torch.rand(4), 1, "group_size"),
                                 (torch.rand(4), True, "group_size"),
                                 (torch.tensor([0.5, float("nan"), 1.0, 0.0]), 2,
                                  r"rewards: expected finite values, got nan at index \(1,\)")):
        with pytest.raises(ValueError, match=f"^{name}"):
            group_advantages(rewards, group)


@pytest.mark.parametrize("per_token", [False, True])
def test_grpo_loss_matches_the_formula_on_random_inputs(per_token):
    batch, length = int(torch.randint(1, 7, ()).item()), int(torch.randint(1, 13, ()).item())
    old = -torch.rand(batch, length, dtype=torch.float64) * 3
    lp = old + torch.randn(batch, length, dtype=torch.float64) * 0.4  # ratios on both sides of the clip range
    adv = torch.randn(batch, length, dtype=torch.float64) if per_token else torch.randn(batch, dtype=torch.float64)
    mask = torch.rand(batch, length) < 0.7
    mask[0, 0] = True
    eps_low, eps_high = 0.1 + 0.2 * torch.rand(()).item(), 0.1 + 0.3 * torch.rand(()).item()
    loss = grpo_loss(lp, old, adv, mask, eps_low=eps_low, eps_high=eps_high)
    expected = _reference_loss(lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), eps_low, eps_high)
    assert abs(loss.item() - expected) < 1e-6
    float_mask = grpo_loss(lp, old, adv, mask.double(), eps_low=eps_low, eps_high=eps_high)
    assert float_mask.item() == pytest.approx(loss.item(), abs=1e-12)


def test_grpo_loss_is_a_token_mean_over_the_whole_batch():
    lp = torch.zeros(2, 4, dtype=torch.float64)  # ratio 1 everywhere: loss = -mean of A over unmasked tokens
    adv = torch.tensor([1.0, -3.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    assert grpo_loss(lp, lp, adv, mask).item() == pytest.approx(-(4 * 1.0 - 3.0) / 5)  # not the mean of row means


def test_grpo_loss_gradcheck():
    batch, length = 3, 5
    old = -torch.rand(batch, length, dtype=torch.float64)
    lp = (old + torch.randn(batch, length, dtype=torch.float64) * 0.5).requires_grad_()
    adv = torch.randn(batch, dtype=torch.float64)
    mask = torch.rand(batch, length) < 0.8
    mask[1, 2] = True
    ratios = torch.exp(lp.detach() - old)
    near_edge = ((ratios - 0.8).abs() < 1e-3) | ((ratios - 1.28).abs() < 1e-3)
    lp.data[near_edge] += 0.01  # finite differences need distance from the clip kinks
    assert torch.autograd.gradcheck(lambda x: grpo_loss(x, old, adv, mask), (lp,))


def _ratio_grad(ratio: float, advantage: float) -> tuple[float, float]:
    """(loss, d loss / d logprob) for one token with the given ratio and advantage, at the default
    eps_low = 0.2, eps_high = 0.28."""
    lp = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    loss = grpo_loss(lp, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([advantage], dtype=torch.float64),
                     torch.ones(1, 1, dtype=torch.bool))
    loss.backward()
    return loss.item(), lp.grad.item()


@pytest.mark.parametrize("ratio, advantage, clipped, value", [
    (1.5, 1.0, True, -1.28),    # positive advantage: capped at 1 + eps_high
    (1.25, 1.0, False, -1.25),  # inside 1 + 0.28 (a symmetric 0.2 clip would cap it at 1.2)
    (1.29, 1.0, True, -1.28),
    (0.5, 1.0, False, -0.5),    # below 1 - eps_low with A > 0: min keeps the unclipped, smaller term
    (0.5, -1.0, True, 0.8),     # negative advantage: floored at 1 - eps_low
    (0.81, -1.0, False, 0.81),
    (0.79, -1.0, True, 0.8),
    (1.5, -1.0, False, 1.5),    # above 1 + eps_high with A < 0: unclipped, the pessimistic term
])
def test_clip_higher_is_asymmetric(ratio, advantage, clipped, value):
    loss, grad = _ratio_grad(ratio, advantage)
    assert loss == pytest.approx(value, abs=1e-12)
    if clipped:
        assert grad == 0.0
    else:
        assert grad == pytest.approx(-ratio * advantage, abs=1e-12)  # d(-r A)/d logprob = -r A


@pytest.mark.parametrize("bad, name", [
    (dict(logprobs=torch.zeros(3)), "logprobs"), (dict(old_logprobs=torch.zeros(2, 3)), "old_logprobs"),
    (dict(advantages=torch.zeros(3)), "advantages"), (dict(mask=torch.ones(2, 5, dtype=torch.bool)), "mask"),
    (dict(mask=torch.zeros(2, 4, dtype=torch.bool)), "mask"), (dict(eps_low=1.0), "eps_low"),
    (dict(mask=torch.full((2, 4), 0.5)), r"mask: expected bool or 0/1 values, got \[0.5\]"),
    (dict(mask=torch.tensor([[1, 2, 0, 1], [1, 1, 1, 1]])), r"mask: expected bool or 0/1 values, got \[2\]"),
    (dict(logprobs=torch.tensor([[0.0, float("nan"), 0.0, 0.0]] * 2)), r"logprobs: expected finite values, got nan at index \(0, 1\)"),
    (dict(old_logprobs=torch.tensor([[0.0] * 4, [0.0, 0.0, 0.0, -float("inf")]])), "old_logprobs: expected finite"),
    (dict(advantages=torch.tensor([0.0, float("nan")])), r"advantages: expected finite values, got nan at index \(1,\)"),
])
def test_grpo_loss_rejects_bad_input(bad, name):
    args = dict(logprobs=torch.zeros(2, 4), old_logprobs=torch.zeros(2, 4), advantages=torch.zeros(2),
                mask=torch.ones(2, 4, dtype=torch.bool))
    eps = {k: bad.pop(k) for k in list(bad) if k.startswith("eps")}
    args.update(bad)
    with pytest.raises(ValueError, match=f"^{name}"):
        grpo_loss(args["logprobs"], args["old_logprobs"], args["advantages"], args["mask"], **eps)


def test_grpo_loss_takes_a_0_1_float_mask_like_a_bool_one():
    logprobs, old = torch.randn(2, 4), torch.randn(2, 4)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 1]])
    args = (logprobs, old, torch.tensor([1.0, -0.5]))
    assert grpo_loss(*args, mask.float()) == grpo_loss(*args, mask.bool())


def test_overlong_penalty_is_dapo_soft_punishment():
    lengths = torch.tensor([1, 12, 13, 14, 16, 17, 40])
    expected = [0.0, 0.0, -0.25, -0.5, -1.0, -1.0, -1.0]  # max_len 16, cache 4: linear from 12 to 16
    assert overlong_penalty(lengths, 16, 4).tolist() == pytest.approx(expected)
    assert overlong_penalty(torch.tensor([16, 17]), 16, 0).tolist() == [0.0, -1.0]
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty(lengths, 16, 16)
