"""The bundled toy task set for RL on a CPU, its byte vocabulary, test-pass rewards and the
demonstrations that pre-train the tiny policy.

A task asks for a tuple of four one-line expressions, each named by an operation and a constant:

    # mul 7, add 3, sub 5, mul 2              <- prompt (all prompts have one length: no padding)
    def f(x):
        return x * 7, x + 3, x - 5, x * 2     <- completion, then EOS
    tests: f(x)[i] == the i-th expression for x in (-9, 17, 19): 12 assertions

There is one task per sequence of four of the 3 operations (81; the recipe key `slots` sets the length).
The demonstrations teach the format and to copy the constants, but not what the names mean: each slot's
operation is drawn uniformly from the 3, whatever the prompt names (`demonstrations`), so a slot is right in exactly 1/3 of them and a whole
completion in 1/81. A policy trained on them cannot know better than chance; what RL has to find, from
rewards alone, is which operator each name stands for.

The reward of a completion is the share of its task's tests it passes, run in the sandbox (each right
slot earns 3/12); a task is solved when all pass.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from iquest_core.sandbox import run_many

EOS_ID = 0  # byte vocabulary: token id = ASCII code, NUL ends a completion
VOCAB_SIZE = 128
OPERATIONS = {"add": "x + {k}", "sub": "x - {k}", "mul": "x * {k}"}
SLOTS = 4
TEST_INPUTS = (-9, 17, 19)  # no two operations agree on any of them for constants 1..9


@dataclass(frozen=True)
class Task:
    prompt: str
    solution: str
    tests: tuple[str, ...]  # one assertion each


def toy_tasks(slots: int = SLOTS) -> list[Task]:
    """One task per sequence of `slots` operations: 3 ** slots tasks (81 for the default 4), each with
    slots * len(TEST_INPUTS) tests; the constants (1..9) are spread over the tasks by a fixed rule."""
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise ValueError(f"slots: expected an int >= 1, got {slots!r}")
    tasks = []
    for number, names in enumerate(itertools.product(OPERATIONS, repeat=slots)):
        constants = [1 + (7 * number + 4 * slot) % 9 for slot in range(slots)]
        bodies = [OPERATIONS[name].format(k=k) for name, k in zip(names, constants)]
        tests = tuple(f"assert f({x})[{slot}] == {eval(body, {'x': x})}"  # noqa: S307 - our own expressions
                      for slot, body in enumerate(bodies) for x in TEST_INPUTS)
        prompt = "# " + ", ".join(f"{name} {k}" for name, k in zip(names, constants)) + "\ndef f(x):\n    return "
        tasks.append(Task(prompt=prompt, solution=", ".join(bodies), tests=tests))
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


def demonstrations(tasks: Sequence[Task], count: int, *, seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs for pre-training: a random task's prompt, and for each slot an operation
    drawn uniformly from OPERATIONS (independent of the names in the prompt) with the prompt's constant."""
    rng = random.Random(seed)
    bodies = list(OPERATIONS.values())
    pairs = []
    for _ in range(count):
        task = rng.choice(tasks)
        constants = task.prompt.split("\n")[0].replace(",", "").split()[2::2]
        pairs.append((task.prompt, ", ".join(rng.choice(bodies).format(k=k) for k in constants)))
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
