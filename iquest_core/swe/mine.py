"""Task mining from a local git repository's first-parent history (`iquest swe mine`).

A candidate is a non-merge first-parent commit that changes source files and test files of the runner's
language, at most max_source_files source files and max_changed_lines changed lines (source and tests),
no binary file. Its broken state (see tasks.py) and its fixed state run the touched test files `runs`
times each, in the sandbox, each side in one workspace (state a flaky test keeps between runs shows).
FAIL_TO_PASS: tests that fail (or are missing, e.g. their module does not import) in every broken run and
pass in every fixed run; PASS_TO_PASS: tests that pass in all runs; a test with mixed results on a side
is flaky and dropped. A task needs one of each. Every commit that yields no task counts one rejection
reason.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from iquest_core.swe import gitrepo
from iquest_core.swe.environment import RepoEnvironment, TestRun, run_tests
from iquest_core.swe.tasks import MODES, Task, write_broken_state
from iquest_core.swe.testrunner import PytestRunner, TestRunner

PROBLEM_TESTS = 10  # failing tests named in a problem statement


@dataclass
class MineReport:
    tasks: list[Task] = field(default_factory=list)
    commits: int = 0                       # first-parent commits looked at
    candidates: int = 0                    # of those, commits that passed the static filters
    rejections: Counter = field(default_factory=Counter)
    flaky_tests: int = 0

    def summary(self) -> dict:
        return {"commits": self.commits, "candidates": self.candidates, "tasks": len(self.tasks),
                "yield": round(len(self.tasks) / self.commits, 4) if self.commits else 0.0,
                "rejections": dict(self.rejections.most_common()), "flaky_tests": self.flaky_tests}


@dataclass(frozen=True)
class _Candidate:
    commit: gitrepo.Commit
    source: list[str]
    tests: list[str]


def _static_filter(repo: Path, commit: gitrepo.Commit, runner: TestRunner, max_source_files: int,
                   max_changed_lines: int, merges: bool) -> _Candidate | str:
    if not commit.parents:
        return "root_commit"
    if len(commit.parents) > 1 and not merges:
        return "merge_commit"
    changes = gitrepo.changed_files(repo, commit.parents[0], commit.sha)
    if any(c.binary for c in changes):
        return "binary_change"
    tests = [c for c in changes if runner.is_test_file(c.path)]
    source = [c for c in changes if c.path.endswith(runner.source_suffixes) and not runner.is_test_file(c.path)]
    if not source:
        return "no_source_change"
    if not tests:
        return "no_test_change"
    if len(source) > max_source_files:
        return "too_many_source_files"
    if sum(c.added + c.deleted for c in source + tests) > max_changed_lines:
        return "too_many_changed_lines"
    return _Candidate(commit, [c.path for c in source], [c.path for c in tests])


def _side(runs: list[TestRun]) -> dict[str, list[bool]]:
    ids = sorted({i for run in runs for i in run.results or {}})
    return {i: [(run.results or {}).get(i) is not None and run.results[i].outcome == "passed" for run in runs]
            for i in ids}


def problem_statement(failing: list[str], broken: TestRun, subject: str | None = None) -> str:
    """The failing tests' ids and truncated failure messages from the broken state (plus the commit
    subject when given)."""
    lines = ["Fix the source code (not the tests) so that these tests pass:"]
    for test_id in failing[:PROBLEM_TESTS]:
        result = (broken.results or {}).get(test_id)
        lines.append(f"- {test_id}")
        message = result.message if result else "not collected (the test module fails to import)"
        lines += [f"    {line}" for line in message.splitlines()[:6]]
    if len(failing) > PROBLEM_TESTS:
        lines.append(f"- ... and {len(failing) - PROBLEM_TESTS} more")
    if subject:
        lines += ["", f"Hint (the fixing commit's subject): {subject}"]
    return "\n".join(lines) + "\n"


class _Miner:
    def __init__(self, repo: Path, mode: str, runner: TestRunner, environment: RepoEnvironment, runs: int,
                 timeout_s: float, commit_message: bool, scratch: Path, artifacts: str) -> None:
        self.repo, self.mode, self.runner, self.environment, self.artifacts = repo, mode, runner, environment, artifacts
        self.runs, self.timeout_s, self.commit_message, self.scratch = runs, timeout_s, commit_message, scratch
        self.head = gitrepo.git(repo, "rev-parse", "HEAD").decode().strip()
        self.pristine_head = scratch / "head"
        if mode == "head":
            gitrepo.export_tree(repo, self.head, self.pristine_head)

    def _states(self, c: _Candidate, work: Path) -> tuple[Task, Path, Path] | str:
        parent, sha = c.commit.parents[0], c.commit.sha
        patch = gitrepo.diff(self.repo, parent, sha, c.source)
        test_patch = gitrepo.diff(self.repo, parent, sha, c.tests)
        base = self.head if self.mode == "head" else parent
        test_files = [p for p in c.tests if PurePosixPath(p).name != "conftest.py"]
        task = Task(f"{self.repo.name}-{sha[:12]}", str(self.repo), self.mode, base, sha, "", [], [], patch,
                    test_patch, test_files, self.runner.name, self.artifacts)
        broken, fixed = work / "broken", work / "fixed"
        try:
            write_broken_state(task, broken)
        except gitrepo.GitError:
            return "revert_conflict" if self.mode == "head" else "test_patch_conflict"
        shutil.copytree(broken, fixed, symlinks=True)
        gitrepo.apply_patch(fixed, patch)
        present = [p for p in test_files if (broken / p).is_file()]
        if not present:
            return "tests_missing"
        return Task(**{**task.to_dict(), "test_files": present}), broken, fixed

    def evaluate(self, c: _Candidate) -> tuple[Task | str, int]:
        """(the task or the rejection reason, flaky tests dropped)."""
        work = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            try:
                states = self._states(c, work)
            except gitrepo.GitError:
                return "patch_conflict", 0
            if isinstance(states, str):
                return states, 0
            task, broken_dir, fixed_dir = states
            run = lambda d: run_tests(d, task.test_files, self.runner, self.environment, timeout_s=self.timeout_s)
            broken = [run(broken_dir) for _ in range(self.runs)]
            fixed = [run(fixed_dir) for _ in range(self.runs)]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if any(r.timed_out for r in broken + fixed):
            return "tests_timeout", 0
        if any(r.results is None for r in fixed) or not all(r.results for r in fixed):
            return "tests_error", 0
        before, after = _side(broken), _side(fixed)
        flaky = {i for side in (before, after) for i, passes in side.items() if len(set(passes)) > 1}
        f2p = [i for i, passes in after.items() if i not in flaky and all(passes) and not any(before.get(i, [False]))]
        p2p = [i for i, passes in after.items() if i not in flaky and all(passes) and all(before.get(i, [False]))]
        if not f2p:
            return "no_fail_to_pass", len(flaky)
        if not p2p:
            return "no_pass_to_pass", len(flaky)
        statement = problem_statement(f2p, broken[0], c.commit.subject if self.commit_message else None)
        return Task(**{**task.to_dict(), "problem_statement": statement, "FAIL_TO_PASS": f2p,
                       "PASS_TO_PASS": p2p}), len(flaky)


def mine_repository(repo: str | Path, *, mode: str = "head", max_tasks: int | None = None, runs: int = 3,
                    environment: RepoEnvironment | None = None, runner: TestRunner | None = None,
                    max_source_files: int = 8, max_changed_lines: int = 500, commit_message: bool = False,
                    workers: int = 2, timeout_s: float = 300.0, max_commits: int | None = None,
                    merges: bool = False, artifacts: str | Path | None = None) -> MineReport:
    """Tasks from repo's first-parent history, newest first (see the module doc). With merges, a merge
    commit counts too, as its change against its first parent (a pull request's squash). artifacts: a
    directory of build outputs git does not track (a compiled extension), copied over every exported tree and
    recorded in the tasks. ValueError naming the argument for a path that is not a git repository or a bad
    option."""
    repo = gitrepo.check_repository(repo)
    if mode not in MODES:
        raise ValueError(f"--mode: expected one of {MODES}, got {mode!r}")
    for name, value in (("max_tasks", max_tasks), ("max_commits", max_commits)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive int, got {value!r}")
    if not isinstance(runs, int) or runs < 1 or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"runs, workers: expected positive ints, got {runs!r}, {workers!r}")
    if artifacts is not None and not Path(artifacts).is_dir():
        raise ValueError(f"--artifacts: not a directory: {artifacts}")
    runner = runner or PytestRunner()
    if not any(runner.is_test_file(p) for p in _tracked_files(repo)):
        raise ValueError(f"REPO_DIR: {repo} has no test files ({runner.name}) at HEAD")
    report = MineReport()
    candidates = []
    for commit in gitrepo.first_parent_history(repo)[:max_commits]:
        report.commits += 1
        found = _static_filter(repo, commit, runner, max_source_files, max_changed_lines, merges)
        if isinstance(found, str):
            report.rejections[found] += 1
        else:
            candidates.append(found)
    report.candidates = len(candidates)
    with tempfile.TemporaryDirectory(prefix="iquest-swe-mine-") as scratch, ThreadPoolExecutor(workers) as pool:
        miner = _Miner(repo, mode, runner, environment or RepoEnvironment.current(), runs, timeout_s,
                       commit_message, Path(scratch), str(Path(artifacts).absolute()) if artifacts else "")
        for start in range(0, len(candidates), workers):
            if max_tasks is not None and len(report.tasks) >= max_tasks:
                report.rejections["not_evaluated_max_tasks"] += len(candidates) - start
                break
            for outcome, flaky in pool.map(miner.evaluate, candidates[start:start + workers]):
                report.flaky_tests += flaky
                if isinstance(outcome, str):
                    report.rejections[outcome] += 1
                elif max_tasks is None or len(report.tasks) < max_tasks:
                    report.tasks.append(outcome)
                else:
                    report.rejections["not_evaluated_max_tasks"] += 1
    return report


def _tracked_files(repo: Path) -> list[str]:
    return gitrepo.git(repo, "ls-files", "-z").decode(errors="surrogateescape").split("\x00")
