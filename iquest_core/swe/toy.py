"""The toy SWE world of the `swe-tiny` recipe: a byte chat tokenizer, a git repository whose history is a
series of one-token fixes, and demonstrations that teach a tiny policy the tool-call format.

Each fix commit of the toy repository corrects the operator of one function `ops/<op>_<k>.py`
(`return x - 3` -> `return x + 3` for add_3) and adds its test `tests/test_<op>_<k>.py` (one test that
fails before the fix, one that passes throughout). Mining it in head mode gives one task per fix; the
failing test's name says which function is wrong and which operator is right. An agent solves a task in
two turns: str_replace(ops/<op>_<k>.py, "x <wrong>", "x <right>"), then submit.
"""

from __future__ import annotations

import math
import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

import torch

from iquest_core.data.chat import render_chat
from iquest_core.swe.env import initial_observation
from iquest_core.swe.tasks import Task

OPERATORS = {"add": "+", "sub": "-", "mul": "*", "pow": "**"}
CONSTANTS = (2, 3, 5)
TOOLS_LINE = "Tools: str_replace(path, old, new), submit()"
_SPECIALS = {"<|im_start|>": 1, "<|im_end|>": 2}


class ByteChatTokenizer:
    """Token id = ASCII code for printable text and newline; <|im_start|> = 1, <|im_end|> = 2; other
    characters become '?'. 128 ids: the tiny preset's vocabulary."""

    vocab_size = 128

    def encode(self, text: str) -> list[int]:
        return [ord(c) if c == "\n" or 32 <= ord(c) < 127 else ord("?") for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) if i == 10 or 32 <= i < 127 else "" for i in ids)

    def special_id(self, token: str) -> int:
        if token not in _SPECIALS:
            raise ValueError(f"token: not a special token of the byte chat tokenizer: {token!r}")
        return _SPECIALS[token]


def _function(operator: str, k: int) -> str:
    return f"def f(x):\n    return x {operator} {k}\n"


def _test(name: str, operator: str, k: int) -> str:
    expected = ", ".join(f"({x}, {eval(f'{x} {operator} {k}')})" for x in (2, 3))  # noqa: S307 - our own literals
    return (f"from ops.{name} import f\n\n\ndef test_{name}_exists():\n    assert callable(f)\n\n\n"
            f"def test_{name}():\n    for x, y in [{expected}]:\n        assert f(x) == y\n")


def _wrong(op: str) -> str:
    names = list(OPERATORS)
    return OPERATORS[names[(names.index(op) + 1) % len(names)]]


def build_toy_repository(dest: Path, constants: Sequence[int] = CONSTANTS) -> Path:
    """A git repository at dest (created): a root commit with every function broken, then one fix commit
    per (operator, constant); other constants than the recipe's give held-out tasks."""
    env = {"GIT_AUTHOR_NAME": "toy", "GIT_AUTHOR_EMAIL": "toy@example.com", "GIT_COMMITTER_NAME": "toy",
           "GIT_COMMITTER_EMAIL": "toy@example.com", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z", "PATH": "/usr/bin:/bin"}
    dest.mkdir(parents=True)
    git = lambda *args: subprocess.run(["git", *args], cwd=dest, check=True, env=env, capture_output=True)  # noqa: E731
    git("init", "-q", "-b", "main")
    (dest / "ops").mkdir()
    (dest / "tests").mkdir()
    (dest / "ops" / "__init__.py").write_text("")
    for op in OPERATORS:
        for k in constants:
            (dest / "ops" / f"{op}_{k}.py").write_text(_function(_wrong(op), k))
    (dest / "tests" / "test_smoke.py").write_text("def test_smoke():\n    assert True\n")
    git("add", "-A")
    git("commit", "-q", "-m", "ops, broken")
    for op, operator in OPERATORS.items():
        for k in constants:
            name = f"{op}_{k}"
            (dest / "ops" / f"{name}.py").write_text(_function(operator, k))
            (dest / "tests" / f"test_{name}.py").write_text(_test(name, operator, k))
            git("add", "-A")
            git("commit", "-q", "-m", f"fix {name}")
    return dest


def is_toy_task(task: Task) -> bool:
    """Whether task is one of the toy repository's (its failing test names a function of it)."""
    name = task.FAIL_TO_PASS[0].rsplit("::", 1)[-1].removeprefix("test_")
    return len(task.FAIL_TO_PASS) == 1 and name in {f"{op}_{k}" for op in OPERATORS for k in CONSTANTS}


def target(task: Task) -> tuple[str, str, int]:
    """(function name, operator name, constant) that a toy task's failing test names."""
    name = task.FAIL_TO_PASS[0].rsplit("::", 1)[-1].removeprefix("test_")
    op, k = name.rsplit("_", 1)
    return name, op, int(k)


def demonstration(task: Task, operator: str) -> list[dict]:
    """The two-turn conversation that puts operator into the task's function, then submits."""
    name, op, _ = target(task)
    path = f"ops/{name}.py"
    return [{"role": "user", "content": initial_observation(task, TOOLS_LINE)},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "str_replace", "arguments": {
                "path": path, "old": f"x {_wrong(op)} ", "new": f"x {operator} "}}]},
            {"role": "tool", "content": f"edited {path}"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "submit", "arguments": {}}]}]


def demonstrations(tasks: Sequence[Task], count: int, *, correct_share: float, seed: int | str,
                   tokenizer: ByteChatTokenizer) -> list[tuple[list[int], list[bool]]]:
    """(ids, assistant mask) of count demonstrations: with probability correct_share the right operator,
    otherwise one of the other operators at random, so the policy learns the format and rarely the fix."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        task = rng.choice(tasks)
        right = OPERATORS[target(task)[1]]
        operator = right if rng.random() < correct_share else rng.choice(
            [o for o in OPERATORS.values() if o != right])
        out.append(render_chat(demonstration(task, operator), tokenizer))
    return out


@torch.no_grad()
def right_fix_probability(model, tasks: Sequence[Task], tokenizer: ByteChatTokenizer) -> float:
    """The policy's probability (temperature 1) of the tokens that decide a toy episode: the right operator
    and the space after it as str_replace's `new`, teacher-forced on the task's demonstration up to there;
    the mean over tasks."""
    shares = []
    for task in tasks:
        operator = OPERATORS[target(task)[1]]
        ids, _ = render_chat(demonstration(task, operator), tokenizer)
        decision = tokenizer.encode(f'"new": "x {operator} ')
        start = next(i for i in range(len(ids)) if ids[i:i + len(decision)] == decision) + len(decision) - len(
            operator) - 1
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        shares.append(math.exp(sum(float(logprobs[p - 1, ids[p]]) for p in range(start, start + len(operator) + 1))))
    return sum(shares) / len(shares)
