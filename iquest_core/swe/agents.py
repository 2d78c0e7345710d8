"""Scripted agents: fixed action lists for a task, the controls of the environment's reward.

- oracle: the gold patch as str_replace actions (each hunk's old lines -> new lines), then submit;
- noop: submit at once;
- test_tamperer: rewrites every hidden test file so that it only passes, then submits;
- history_peeker: looks for the fix in git history and the file system, then submits.
"""

from __future__ import annotations

import re
from typing import Any

from iquest_core.swe.tasks import Task

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


def patch_edits(patch: str) -> list[tuple[str, str, str]]:
    """(path, old text, new text) for every hunk of a unified diff of modified text files."""
    edits: list[tuple[str, str, str]] = []
    path, old, new, in_hunk = "", [], [], False

    def flush() -> None:
        if in_hunk:
            edits.append((path, "".join(old), "".join(new)))

    for line in patch.splitlines(keepends=True):
        if line.startswith("diff --git "):
            flush()
            in_hunk = False
        elif line.startswith("+++ "):
            path = line[4:].strip().removeprefix("b/")
        elif _HUNK.match(line):
            flush()
            old, new, in_hunk = [], [], True
        elif in_hunk and line[:1] in (" ", "-", "+", "\n"):
            text = line[1:] if line != "\n" else line
            if line[0] != "+":
                old.append(text)
            if line[0] != "-":
                new.append(text)
    flush()
    return edits


def oracle(task: Task) -> list[dict[str, Any]]:
    return [{"tool": "str_replace", "path": p, "old": o, "new": n} for p, o, n in patch_edits(task.patch)] + \
        [{"tool": "submit"}]


def noop(task: Task) -> list[dict[str, Any]]:
    return [{"tool": "submit"}]


def test_tamperer(task: Task) -> list[dict[str, Any]]:
    names = {test_id.split("::")[-1].split("[")[0] for test_id in task.FAIL_TO_PASS + task.PASS_TO_PASS}
    body = "".join(f"def {name}():\n    pass\n\n\n" for name in sorted(names))
    return [{"tool": "create", "path": path, "text": body} for path in task.test_files] + \
        [{"tool": "create", "path": "conftest.py", "text": "import pytest\n\n\n@pytest.fixture(autouse=True)\n"
                                                           "def _skip():\n    pass\n"},
         {"tool": "submit"}]


def history_peeker(task: Task) -> list[dict[str, Any]]:
    return [{"tool": "bash", "command": "git log -p -n 5"},
            {"tool": "bash", "command": "git show HEAD:" + (task.test_files[0] if task.test_files else ".")},
            {"tool": "bash", "command": "ls -a; ls -a /; cat .git/HEAD; find / -maxdepth 4 -name .git"},
            {"tool": "submit"}]


def play(env, actions: list[dict[str, Any]]):
    """Reset env and take actions until one ends the episode; returns that step's result (an env of
    SWEEnv's interface). Raises ValueError when the actions end without it."""
    env.reset()
    for action in actions:
        result = env.step(action)
        if result.done:
            return result
    raise ValueError(f"actions: {len(actions)} actions never ended the episode")


AGENTS = {"oracle": oracle, "noop": noop, "test_tamperer": test_tamperer, "history_peeker": history_peeker}
