"""`iquest swe validate`: every task's gold patch must resolve it in every run and the empty patch in none.

For each task: `runs` verifications of the broken state with the gold patch applied and `runs` of the
broken state as it is (the same verifier the agents get). summary.json:
{"tasks", "gold_resolved" (tasks the gold patch resolved in every run), "empty_resolved" (tasks the
empty patch resolved in some run), "flaky" (tasks whose gold runs disagree), "infra_errors"}.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from iquest_core.atomic_io import write_atomic
from iquest_core.jsonl import write_jsonl
from iquest_core.swe.env import broken_snapshot
from iquest_core.swe.environment import RepoEnvironment
from iquest_core.swe.gitrepo import apply_patch
from iquest_core.swe.tasks import Task
from iquest_core.swe.verify import verify


def validate_task(task: Task, environment: RepoEnvironment, runs: int = 3, timeout_s: float = 300.0) -> dict:
    """{"instance_id", "gold": [r_test per run], "empty": [...], "errors": [...]} of one task."""
    pristine = broken_snapshot(task)
    record: dict = {"instance_id": task.instance_id, "gold": [], "empty": [], "errors": []}
    with tempfile.TemporaryDirectory(prefix="iquest-swe-validate-") as scratch:
        gold = Path(scratch) / "gold"
        shutil.copytree(pristine, gold, symlinks=True)
        apply_patch(gold, task.patch)
        for name, workspace in (("gold", gold), ("empty", pristine)):
            for _ in range(runs):
                result = verify(task, workspace, pristine, environment, timeout_s=timeout_s)
                record[name].append(result.r_test)
                if result.error:
                    record["errors"].append(f"{name}: {result.error}")
    return record


def validate_tasks(tasks: list[Task], output: str | Path, *, environment: RepoEnvironment | None = None,
                   runs: int = 3, workers: int = 2) -> dict:
    """Validate tasks into output/validation.jsonl and output/summary.json; returns the summary."""
    output = Path(output)
    environment = environment or RepoEnvironment.current()
    with ThreadPoolExecutor(workers) as pool:
        records = list(pool.map(lambda t: validate_task(t, environment, runs), tasks))
    summary = {"tasks": len(records),
               "gold_resolved": sum(all(r == 1.0 for r in rec["gold"]) for rec in records),
               "empty_resolved": sum(any(r == 1.0 for r in rec["empty"]) for rec in records),
               "flaky": sum(len(set(rec["gold"])) > 1 or len(set(rec["empty"])) > 1 for rec in records),
               "infra_errors": sum(bool(rec["errors"]) for rec in records)}
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "validation.jsonl", records)
    write_atomic(output / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
