"""The bundled toy task set for RL on a CPU, its byte vocabulary, test-pass rewards and the noisy
demonstrations that pre-train the tiny policy.

A task asks for the body of a one-line Python function from a comment naming an operation and a constant:

    # max 7                   <- prompt (all prompts have the same length, so a batch needs no padding)
    def f(x):
        return max(x, 7)      <- completion: "max(x, 7)" then EOS
    tests: f(-3) == 7, f(0) == 7, f(4) == 7, f(9) == 9, f(12) == 12

The reward of a completion is the share of its task's tests it passes, run in the sandbox (a wrong
operation often passes some tests: "x * 2" and "x + 2" agree at x = 2).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from iquest_core.sandbox import run_many

EOS_ID = 0  # byte vocabulary: token id = ASCII code, NUL ends a completion
VOCAB_SIZE = 128
OPERATIONS = {"add": "x + {k}", "sub": "x - {k}", "mul": "x * {k}", "max": "max(x, {k})", "min": "min(x, {k})",
              "mod": "x % {k}", "neg": "{k} - x"}
TEST_INPUTS = (-3, 0, 2, 4, 9, 12)


@dataclass(frozen=True)
class Task:
    prompt: str
    solution: str
    tests: tuple[str, ...]  # one assertion each


def toy_tasks() -> list[Task]:
    """Every (operation, constant 1..9) task: 63 tasks, each with len(TEST_INPUTS) tests."""
    tasks = []
    for name, body in OPERATIONS.items():
        for k in range(1, 10):
            solution = body.format(k=k)
            expected = [eval(solution, {"x": x}) for x in TEST_INPUTS]  # noqa: S307 - our own fixed expressions
            tasks.append(Task(prompt=f"# {name} {k}\ndef f(x):\n    return ", solution=solution,
                              tests=tuple(f"assert f({x}) == {y}" for x, y in zip(TEST_INPUTS, expected))))
    return tasks


def encode(text: str) -> list[int]:
    """Byte-vocabulary ids of ASCII text (ValueError on other characters or NUL)."""
    ids = [ord(ch) for ch in text]
    if any(not 0 < i < VOCAB_SIZE for i in ids):
        raise ValueError(f"text: expected ASCII without NUL, got {text!r}")
    return ids


def decode(ids: Sequence[int]) -> str:
    """Text of byte-vocabulary ids, stopping at the first EOS."""
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        out.append(chr(i))
    return "".join(out)


def demonstrations(tasks: Sequence[Task], count: int, *, correct_share: float, seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs for pre-training: with probability correct_share the task's solution,
    otherwise the solution of another operation with the same constant, so the pre-trained policy knows
    the format but is often wrong, and RL has something to learn."""
    rng = random.Random(seed)
    by_constant: dict[str, list[Task]] = {}
    for task in tasks:
        by_constant.setdefault(task.prompt.split("\n")[0].split()[-1], []).append(task)
    pairs = []
    for _ in range(count):
        task = rng.choice(tasks)
        if rng.random() >= correct_share:
            task_k = task.prompt.split("\n")[0].split()[-1]
            pairs.append((task.prompt, rng.choice(by_constant[task_k]).solution))
        else:
            pairs.append((task.prompt, task.solution))
    return pairs


class TestPassReward:
    """Rewards = share of a task's tests that prompt + completion passes, from one sandboxed run per
    distinct (prompt, completion): each assertion runs on its own (a failing one does not stop the
    others) and the harness prints the count, behind a random tag, to the test process's own stdout
    (Verdict.tests_stdout), which the judged program cannot write to. A run that
    times out, crashes, runs out of memory or does not compile scores 0.0. Programs are deterministic,
    so verdicts are memoised by program text."""

    def __init__(self, *, workers: int | None = None, timeout_s: float = 5.0, memory_mb: int = 256) -> None:
        self.workers, self.timeout_s, self.memory_mb = workers, timeout_s, memory_mb
        self.cache: dict[tuple[str, tuple[str, ...]], float] = {}

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], tests: Sequence[Sequence[str]]
                 ) -> list[float]:
        keys = [(p + c + "\n", tuple(t)) for p, c, t in zip(prompts, completions, tests, strict=True)]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        tag = secrets.token_hex(8)
        verdicts = run_many([(program, _harness(cases, tag)) for program, cases in todo], workers=self.workers,
                            timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        for (program, cases), verdict in zip(todo, verdicts):
            self.cache[program, cases] = _share(verdict, tag, len(cases))
        return [self.cache[k] for k in keys]


def _harness(cases: Sequence[str], tag: str) -> str:
    return (f"_cases = {list(cases)!r}\n_ok = 0\n"
            "for _case in _cases:\n"
            "    try:\n"
            "        exec(_case, globals())\n"
            "        _ok += 1\n"
            "    except Exception:\n"
            "        pass\n"
            f"print({tag!r}, _ok)\n")


def _share(verdict, tag: str, total: int) -> float:
    if not verdict.passed:
        return 0.0
    for line in reversed(verdict.tests_stdout.splitlines()):
        head, _, count = line.partition(" ")
        if head == tag and count.isdigit():
            return min(int(count), total) / total
    return 0.0
