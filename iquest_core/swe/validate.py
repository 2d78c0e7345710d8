"""`iquest swe validate`: keep a task only if its gold patch resolves it in every run and the empty patch in none.

For each task: `runs` verifications of the broken state with the gold patch applied and `runs` of the
broken state as it is (the same verifier the agents get). A test whose outcome differs between runs of
one side is flaky (mining runs each side only a few times, so a rare flake can slip through): such tests
are dropped from FAIL_TO_PASS / PASS_TO_PASS and the pruned task is validated again from scratch; it is
kept only if that second pass is clean and it still has one test of each kind. Verdicts:

    valid             gold resolved in every run, empty in none, no flaky test (after pruning, if any)
    infra_error       a run gave no report (sandbox error, timeout)
    gold_unresolved   the gold patch failed some run (not by a flaky test)
    empty_resolved    the empty patch resolved some run
    flaky             flaky tests again after pruning, or pruning left no FAIL_TO_PASS or PASS_TO_PASS

Writes DIR/tasks.jsonl (the valid tasks, pruned where tests were dropped: the file to train on),
DIR/validation.jsonl (per task: instance_id, verdict, dropped_tests, and per pass the r_test of every
gold and empty run and the errors) and DIR/summary.json: {"tasks", "gold_resolved" (tasks the gold patch
resolved in every first-pass run), "empty_resolved" (tasks the empty patch resolved in some first-pass
run), "flaky" (tasks with a flaky test in the first pass), "infra_errors", "valid", "verdicts" (count per
verdict), "dropped_tests"}.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import write_jsonl
from iquest_core.swe.env import broken_snapshot
from iquest_core.swe.environment import RepoEnvironment
from iquest_core.swe.gitrepo import apply_patch
from iquest_core.swe.tasks import Task
from iquest_core.swe.verify import Verification, verify


def run_validation(task: Task, environment: RepoEnvironment, runs: int = 3,
                   timeout_s: float = 300.0) -> dict[str, list[Verification]]:
    """{"gold": [Verification per run], "empty": [...]} of one task."""
    pristine = broken_snapshot(task)
    passes: dict[str, list[Verification]] = {"gold": [], "empty": []}
    with tempfile.TemporaryDirectory(prefix="iquest-swe-validate-") as scratch:
        gold = Path(scratch) / "gold"
        shutil.copytree(pristine, gold, symlinks=True)
        apply_patch(gold, task.patch)
        for name, workspace in (("gold", gold), ("empty", pristine)):
            passes[name] = [verify(task, workspace, pristine, environment, timeout_s=timeout_s) for _ in range(runs)]
    return passes


def flaky_tests(passes: dict[str, list[Verification]]) -> list[str]:
    """The tests whose outcome is not the same in every run of a side (gold or empty)."""
    flaky = set()
    for runs in passes.values():
        for test in {t for run in runs for t in run.tests}:
            if len({run.tests.get(test) for run in runs}) > 1:
                flaky.add(test)
    return sorted(flaky)


def verdict(passes: dict[str, list[Verification]]) -> str:
    """The verdict of one validation pass (see the module doc), flakiness aside from "flaky"."""
    if any(run.error for runs in passes.values() for run in runs):
        return "infra_error"
    if flaky_tests(passes):
        return "flaky"
    if not all(run.resolved for run in passes["gold"]):
        return "gold_unresolved"
    if any(run.resolved for run in passes["empty"]):
        return "empty_resolved"
    return "valid"


def _pass_record(passes: dict[str, list[Verification]]) -> dict:
    return {"gold": [run.r_test for run in passes["gold"]], "empty": [run.r_test for run in passes["empty"]],
            "errors": [f"{side}: {run.error}" for side, runs in passes.items() for run in runs if run.error]}


def validate_task(task: Task, environment: RepoEnvironment, runs: int = 3,
                  timeout_s: float = 300.0) -> tuple[Task | None, dict]:
    """(the validated task, pruned of flaky tests, or None; its record for validation.jsonl)."""
    first = run_validation(task, environment, runs, timeout_s)
    record = {"instance_id": task.instance_id, "verdict": verdict(first), "dropped_tests": [],
              "passes": [_pass_record(first)]}
    if record["verdict"] == "valid":
        return task, record
    if record["verdict"] != "flaky":
        return None, record
    dropped = flaky_tests(first)
    record["dropped_tests"] = dropped
    pruned = dataclasses.replace(task, FAIL_TO_PASS=[t for t in task.FAIL_TO_PASS if t not in dropped],
                                 PASS_TO_PASS=[t for t in task.PASS_TO_PASS if t not in dropped])
    if not pruned.FAIL_TO_PASS or not pruned.PASS_TO_PASS:
        return None, record
    second = run_validation(pruned, environment, runs, timeout_s)
    record["verdict"] = verdict(second)
    record["passes"].append(_pass_record(second))
    return (pruned if record["verdict"] == "valid" else None), record


def validate_tasks(tasks: list[Task], output: str | Path, *, environment: RepoEnvironment | None = None,
                   runs: int = 3, workers: int = 2) -> dict:
    """Validate tasks into output (see the module doc); returns the summary. ValueError naming the argument
    for fewer than 2 runs (flakiness needs two) or workers below 1."""
    if not isinstance(runs, int) or runs < 2:
        raise ValueError(f"--runs: expected an int >= 2, got {runs!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers: expected a positive int, got {workers!r}")
    output = Path(output)
    environment = environment or RepoEnvironment.current()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda t: validate_task(t, environment, runs), tasks))
    records = [record for _, record in results]
    first = [record["passes"][0] for record in records]
    summary = {"tasks": len(records),
               "gold_resolved": sum(all(r == 1.0 for r in p["gold"]) for p in first),
               "empty_resolved": sum(any(r == 1.0 for r in p["empty"]) for p in first),
               "flaky": sum(bool(record["dropped_tests"]) for record in records),
               "infra_errors": sum(bool(p["errors"]) for p in first),
               "valid": sum(task is not None for task, _ in results),
               "verdicts": dict(Counter(record["verdict"] for record in records).most_common()),
               "dropped_tests": sum(len(record["dropped_tests"]) for record in records)}
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "tasks.jsonl", [task.to_dict() for task, _ in results if task is not None])
    write_jsonl(output / "validation.jsonl", records)
    write_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
