"""The hidden-test verifier: a workspace's state judged by the task's FAIL_TO_PASS and PASS_TO_PASS tests.

The agent's workspace is copied, then every test file and test-runner configuration file is restored
from the pristine broken state (changed ones overwritten, added ones deleted) and every bytecode cache
removed, so edited tests, a planted conftest.py or a forged .pyc earn nothing. Then the task's test files
run once in the sandbox.

    r_test = (F2P passed / |F2P|) x (P2P passed / |P2P|)   (a task without P2P uses 1 for the second factor)
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from iquest_core.swe.environment import RepoEnvironment, run_tests
from iquest_core.swe.tasks import Task
from iquest_core.swe.testrunner import RUNNERS, TestRunner


@dataclass(frozen=True)
class Verification:
    """r_test and resolved as in the module doc; tests: id -> passed; timed_out: the test run hit its
    limit; error: why no report came back (then r_test is 0 and the trajectory is not scored)."""

    r_test: float
    resolved: bool
    tests: dict[str, bool] = field(default_factory=dict)
    timed_out: bool = False
    error: str = ""


def _protected(runner: TestRunner, relative: str) -> bool:
    return runner.is_test_file(relative) or Path(relative).name in getattr(runner, "config_files", ())


def restore_tests(workspace: Path, pristine: Path, runner: TestRunner) -> None:
    """Make every protected file of workspace (tests, runner configuration) equal to pristine's, and
    remove bytecode caches."""
    for path in sorted(workspace.rglob("*"), reverse=True):
        relative = str(path.relative_to(workspace))
        if path.name == "__pycache__" and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.suffix == ".pyc" or (_protected(runner, relative) and not (pristine / relative).is_file()):
            if path.is_file() or path.is_symlink():
                path.unlink()
    for path in pristine.rglob("*"):
        relative = str(path.relative_to(pristine))
        if path.is_file() and _protected(runner, relative):
            target = workspace / relative
            if target.is_symlink() or target.is_dir():
                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def source_digest(workspace: Path, task: Task) -> str:
    """A digest of every file of workspace that the restore keeps (what the hidden tests can depend on)."""
    runner = RUNNERS[task.runner]()
    digest = hashlib.sha256()
    for path in sorted(workspace.rglob("*")):
        relative = str(path.relative_to(workspace))
        if path.is_file() and not path.is_symlink() and not _protected(runner, relative) and path.suffix != ".pyc":
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
        elif path.is_symlink():
            digest.update(relative.encode() + b"\1" + str(path.readlink()).encode() + b"\0")
    return digest.hexdigest()


def verify(task: Task, workspace: Path, pristine: Path, environment: RepoEnvironment, *,
           timeout_s: float = 300.0) -> Verification:
    """Judge workspace (left untouched) against the task's hidden tests."""
    runner = RUNNERS[task.runner]()
    with tempfile.TemporaryDirectory(prefix="iquest-swe-verify-") as scratch:
        judged = Path(scratch) / "workspace"
        shutil.copytree(workspace, judged, symlinks=True)
        restore_tests(judged, pristine, runner)
        run = run_tests(judged, task.test_files, runner, environment, timeout_s=timeout_s)
    if run.results is None:
        return Verification(0.0, False, timed_out=run.timed_out, error=run.error)
    tests = {i: i in run.results and run.results[i].outcome == "passed" for i in task.FAIL_TO_PASS + task.PASS_TO_PASS}
    f2p = sum(tests[i] for i in task.FAIL_TO_PASS) / len(task.FAIL_TO_PASS)
    p2p = sum(tests[i] for i in task.PASS_TO_PASS) / len(task.PASS_TO_PASS) if task.PASS_TO_PASS else 1.0
    return Verification(f2p * p2p, f2p * p2p == 1.0, tests)
