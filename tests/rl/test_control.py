"""GRPO learns from its rewards: trained from one pre-trained policy, with the same seed and steps, it ends
well above the control whose rewards are shuffled inside each group (`iquest rl --control`).

The task set is the toy one with two slots (9 tasks; recipe key `slots`), small enough to separate in
25 RL steps. The reward is computed in process (slot_reward) instead of in the sandbox: the same shares
as TestPassReward for completions spelled like the solutions, at no process start per completion.
"""

from __future__ import annotations

import torch

from iquest_core.model import LoopCoderForCausalLM
from iquest_core.rl import tasks as rl_tasks
from iquest_core.rl.grpo import train_rl
from iquest_core.rl.recipe import load_rl_recipe

SLOTS = 2
TASKS = rl_tasks.toy_tasks(SLOTS)
SOLUTIONS = {t.prompt: t.solution.split(", ") for t in TASKS}
SETTINGS = [f"slots={SLOTS}", "pretrain.steps=150", "pretrain.batch=32", "steps=25", "rl.max_new_tokens=20",
            "greedy_eval=false", "keep_checkpoints=1"]


def slot_reward(prompts, completions, tests) -> list[float]:
    """Share of the task's slots whose expression equals the solution's (0 unless there are SLOTS)."""
    shares = []
    for prompt, completion in zip(prompts, completions, strict=True):
        want, got = SOLUTIONS[prompt], completion.split(", ")
        shares.append(sum(a == b for a, b in zip(want, got)) / len(want) if len(got) == len(want) else 0.0)
    return shares


@torch.no_grad()
def right_operator_share(policy_dir) -> float:
    """Teacher-forced on every task's solution: the probability the policy gives the right operator among
    the three at each slot, averaged over tasks and slots (1/3 for a policy that ignores the names)."""
    model = LoopCoderForCausalLM.from_pretrained(policy_dir).eval()
    texts = [t.prompt + t.solution for t in TASKS]
    logits = model(torch.tensor([rl_tasks.encode(text) for text in texts])).logits.float()
    operators = [rl_tasks.encode(body.split()[1])[0] for body in rl_tasks.OPERATIONS.values()]
    shares = []
    for row, (task, text) in enumerate(zip(TASKS, texts)):
        for pos in range(len(task.prompt), len(text)):
            if ord(text[pos]) in operators:
                probs = torch.softmax(logits[row, pos - 1, operators], -1)
                shares.append(float(probs[operators.index(ord(text[pos]))]))
    assert len(shares) == len(TASKS) * SLOTS
    return sum(shares) / len(shares)


def test_grpo_beats_the_shuffled_rewards_control(tmp_path):
    """Mutations that fail it: advantages with their sign flipped (trained falls under the pre-trained
    policy), rewards without the test share (no kept group moves the policy), the control without the
    shuffle (it learns as much as GRPO)."""
    out = tmp_path / "grpo"
    train_rl(load_rl_recipe("rl", SETTINGS), out, reward=slot_reward)
    control = load_rl_recipe("rl", [*SETTINGS, "rl.shuffle_rewards=true", f"model.init_from={out / 'pretrained'}"])
    train_rl(control, out / "control", reward=slot_reward)
    before, trained, shuffled = (right_operator_share(out / name) for name in ("pretrained", "policy",
                                                                               "control/policy"))
    assert abs(before - 1 / 3) < 0.02, before  # the demonstrations never show what a name means
    assert trained > before + 0.15 and trained > shuffled + 0.15, (before, trained, shuffled)
