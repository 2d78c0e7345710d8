"""The toy world of swe-tiny: its demonstrations teach the format and, at correct_share, the right fix."""

from types import SimpleNamespace

import pytest
import torch

from iquest_core.data.chat import render_chat
from iquest_core.swe.tasks import Task, task_from_record
from iquest_core.swe.toy import (OPERATORS, ByteChatTokenizer, demonstration, demonstrations, right_fix_probability,
                                 target)


def toy_task(name: str) -> Task:
    return task_from_record({"instance_id": f"toy-{name}", "repo": "toy", "mode": "head", "base_commit": "0" * 40,
                           "fix_commit": "1" * 40, "problem_statement": f"- tests/test_{name}.py::test_{name}\n",
                           "FAIL_TO_PASS": [f"tests/test_{name}.py::test_{name}"],
                           "PASS_TO_PASS": ["tests/test_smoke.py::test_smoke"], "patch": "", "test_patch": "",
                           "test_files": [f"tests/test_{name}.py"], "runner": "pytest"})


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_demonstrations_make_the_right_fix_at_the_given_share(share):
    tasks = [toy_task(f"{op}_{k}") for op in OPERATORS for k in (2, 3)]
    tokenizer = ByteChatTokenizer()
    demos = demonstrations(tasks, 400, correct_share=share, seed=0, tokenizer=tokenizer)
    right = 0
    for ids, _ in demos:
        text = tokenizer.decode(ids)
        name = text.split("tests/test_", 1)[1].split(".py", 1)[0]
        right += f'"new": "x {OPERATORS[target(toy_task(name))[1]]} "' in text
    assert right / len(demos) == pytest.approx(share, abs=0.06)


class Teacher:
    """A stand-in policy that predicts, at every position, the next token of one fixed demonstration."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, ids):
        logits = torch.full((1, ids.shape[1], 128), -30.0)
        for position, token in enumerate(self.ids[1:ids.shape[1] + 1]):
            logits[0, position, token] = 30.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("name, written, expected", [("pow_3", "**", 1.0), ("pow_3", "*", 0.0), ("pow_3", "+", 0.0),
                                                    ("mul_2", "*", 1.0), ("mul_2", "**", 0.0), ("mul_2", "-", 0.0)])
def test_right_fix_probability_reads_the_deciding_tokens(name, written, expected):
    """A policy that always writes the right operator scores 1; one that writes a wrong one scores 0 (also '**'
    where '*' is right: the space after the operator is part of the decision)."""
    task = toy_task(name)
    tokenizer = ByteChatTokenizer()
    ids, _ = render_chat(demonstration(task, written), tokenizer)
    assert right_fix_probability(Teacher(ids), [task], tokenizer) == pytest.approx(expected, abs=1e-6)
