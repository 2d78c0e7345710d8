"""Task records (one JSON object a line in tasks.jsonl) and the broken state each one describes.

Fields: instance_id, repo (the repository's path), mode ("head": the fix's source change reverted on the
newest commit; "base": the fix commit's parent with its new tests applied), base_commit, fix_commit,
problem_statement, FAIL_TO_PASS, PASS_TO_PASS (test ids), patch (the gold source change: broken ->
fixed), test_patch (the fix commit's test change), test_files (the files the hidden tests live in),
runner ("pytest"), artifacts (optional: a directory of build outputs that git does not track, such as a
compiled extension, copied over every exported tree).

The broken state is base_commit's tree plus test_patch (mode base) or minus patch (mode head); it never
contains .git.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from iquest_core.swe import gitrepo
from iquest_core.swe.testrunner import RUNNERS

MODES = ("head", "base")


@dataclass(frozen=True)
class Task:
    instance_id: str
    repo: str
    mode: str
    base_commit: str
    fix_commit: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    patch: str
    test_patch: str
    test_files: list[str]
    runner: str = "pytest"
    artifacts: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


_LIST_FIELDS = ("FAIL_TO_PASS", "PASS_TO_PASS", "test_files")


def task_from_record(record: object, where: str = "task") -> Task:
    """A Task from a decoded record; ValueError naming the field that is missing or of the wrong type."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    defaults = {f.name: f.default for f in fields(Task) if f.default is not MISSING}
    for name in Task.__annotations__:
        if name not in record and name not in defaults:
            raise ValueError(f"{where}: missing field {name!r}")
    for name in Task.__annotations__:
        value = record.get(name, defaults.get(name))
        if name in _LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}.{name}: expected a list of str, got {value!r:.80}")
        elif not isinstance(value, str):
            raise ValueError(f"{where}.{name}: expected str, got {type(value).__name__}")
    if record["mode"] not in MODES:
        raise ValueError(f"{where}.mode: expected one of {MODES}, got {record['mode']!r}")
    if record.get("runner", "pytest") not in RUNNERS:
        raise ValueError(f"{where}.runner: expected one of {tuple(RUNNERS)}, got {record['runner']!r}")
    if not record["FAIL_TO_PASS"]:
        raise ValueError(f"{where}.FAIL_TO_PASS: expected at least one test id")
    return Task(**{name: record[name] for name in Task.__annotations__ if name in record})


def load_tasks(path: str | Path) -> list[Task]:
    """Every task of a JSONL file; ValueError naming the file, line and field of a malformed record."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"tasks: no such file: {path}")
    tasks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not JSON ({e.msg})") from None
        tasks.append(task_from_record(record, f"{path}:{number}"))
    if not tasks:
        raise ValueError(f"tasks: {path} holds no task")
    return tasks


def write_broken_state(task: Task, dest: Path) -> Path:
    """Write the task's broken state into dest (a new directory) from its repository."""
    gitrepo.export_tree(Path(task.repo), task.base_commit, dest)
    if task.artifacts:
        shutil.copytree(task.artifacts, dest, symlinks=True, dirs_exist_ok=True)
    if task.mode == "base":
        gitrepo.apply_patch(dest, task.test_patch)
    else:
        gitrepo.apply_patch(dest, task.patch, reverse=True)
    return dest
