"""`SWEEnv`: one task as a multi-step environment for a tool-using agent.

    env = SWEEnv(task)                    # a record of load_tasks("tasks.jsonl")
    obs = env.reset()                     # the problem statement and the tool list
    r = env.step({"tool": "bash", "command": "pytest -x -q"})   # r.observation, r.reward (None until done), r.done
    r = env.step({"tool": "submit"})      # done; r.reward = r_test; r.info["resolved"], r.info["tests"]
    env.close()

Each reset gives a fresh copy of the broken state without .git (the broken states of a process are built
once per task and shared read-only as the source of copies). Every tool runs in the sandbox or on files
inside the workspace only. The episode ends at submit or after max_turns actions (then verified as if
submitted). An infrastructure error (the sandbox or the verifier could not run) or a verifier timeout ends
it with reward None and info["infra_error"]: such a trajectory is not scored.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iquest_core.sandbox import SandboxUnavailable
from iquest_core.swe.environment import RepoEnvironment, python_path
from iquest_core.swe.gitrepo import GitError
from iquest_core.swe.tasks import Task, write_broken_state
from iquest_core.swe.tools import TOOLS_HELP, ActionError, Tools, parse_action
from iquest_core.swe.verify import source_digest, verify

_SNAPSHOTS: dict[tuple[str, str], Path] = {}
_SNAPSHOT_LOCK = threading.Lock()
_SNAPSHOT_ROOT: list[Path] = []


def broken_snapshot(task: Task) -> Path:
    """The task's pristine broken state, built once per process (read it, never write it)."""
    key = (task.instance_id, task.base_commit)
    with _SNAPSHOT_LOCK:
        if key not in _SNAPSHOTS:
            if not _SNAPSHOT_ROOT:
                _SNAPSHOT_ROOT.append(Path(tempfile.mkdtemp(prefix="iquest-swe-snapshots-")))
                atexit.register(shutil.rmtree, _SNAPSHOT_ROOT[0], True)
            _SNAPSHOTS[key] = write_broken_state(task, _SNAPSHOT_ROOT[0] / f"{len(_SNAPSHOTS)}")
        return _SNAPSHOTS[key]


def initial_observation(task: Task, instructions: str = TOOLS_HELP) -> str:
    """What reset() returns: the problem statement, then the tool list."""
    return f"{task.problem_statement}{instructions}\n"


@dataclass
class StepResult:
    observation: str
    reward: float | None
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class SWEEnv:
    """instructions: the tool list appended to the problem statement in reset(). verify_cache: a dict
    shared by environments whose tests are deterministic (validated tasks): verdicts by the digest of the
    workspace's non-test files, so identical final states are judged once."""

    def __init__(self, task: Task, *, environment: RepoEnvironment | None = None, max_turns: int = 30,
                 test_timeout_s: float = 300.0, instructions: str = TOOLS_HELP,
                 verify_cache: dict | None = None) -> None:
        if not isinstance(task, Task):
            raise ValueError(f"task: expected a Task (see load_tasks), got {type(task).__name__}")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns: expected a positive int, got {max_turns!r}")
        self.task, self.max_turns, self.test_timeout_s = task, max_turns, test_timeout_s
        self.instructions, self.verify_cache = instructions, verify_cache
        self.environment = environment or RepoEnvironment.current()
        self.workspace: Path | None = None
        self.turns, self.done = 0, False

    def reset(self) -> str:
        self.close()
        pristine = broken_snapshot(self.task)
        scratch = Path(tempfile.mkdtemp(prefix="iquest-swe-ws-"))
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, scratch, True)  # also if never closed
        self.workspace = scratch / "workspace"
        shutil.copytree(pristine, self.workspace, symlinks=True)
        self.tools = Tools(self.workspace, self.environment.ro_binds(),
                           self.environment.variables(python_path(self.workspace)))
        self.turns, self.done = 0, False
        return initial_observation(self.task, self.instructions)

    def step(self, action: Any) -> StepResult:
        if self.workspace is None or self.done:
            raise RuntimeError("step: call reset() first (the episode is over or never started)")
        self.turns += 1
        try:
            name, args = parse_action(action)
            if name == "submit":
                return self._finish("submitted")
            observation = self.tools.run(name, args)
        except ActionError as e:
            observation = str(e)
        except (SandboxUnavailable, GitError, OSError) as e:
            return self._end(f"infra error: {e}", None, {"infra_error": str(e)})
        if self.turns >= self.max_turns:
            return self._finish(observation + f"\n[turn limit {self.max_turns} reached: submitted]")
        return StepResult(observation, None, False, {"turns": self.turns})

    def _finish(self, observation: str) -> StepResult:
        try:
            key = None if self.verify_cache is None else (self.task.instance_id,
                                                          source_digest(self.workspace, self.task))
            result = self.verify_cache.get(key) if key else None
            if result is None:
                result = verify(self.task, self.workspace, broken_snapshot(self.task), self.environment,
                                timeout_s=self.test_timeout_s)
                if key and not result.error:
                    self.verify_cache[key] = result
        except (SandboxUnavailable, GitError, OSError) as e:
            return self._end(f"infra error: {e}", None, {"infra_error": str(e)})
        if result.error:
            return self._end(observation, None, {"infra_error": result.error, "verifier_timeout": result.timed_out})
        return self._end(observation, result.r_test, {"resolved": result.resolved, "tests": result.tests})

    def _end(self, observation: str, reward: float | None, info: dict[str, Any]) -> StepResult:
        self.done = True
        return StepResult(observation, reward, True, {"turns": self.turns, "resolved": False, "tests": {}, **info})

    def close(self) -> None:
        if self.workspace is not None:
            self._remove_scratch()
            self.workspace = None

    def __enter__(self) -> SWEEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
