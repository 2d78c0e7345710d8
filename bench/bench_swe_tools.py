"""SWE tool-step overhead: 8 trajectories in parallel, 10 `bash` steps each, through SWEEnv (a fresh
sandbox per step: namespaces, cgroup, the repository's environment mounted read-only, output truncation)
against the baseline of the same command as a bare `bash -c` subprocess in a plain copy of the workspace
(no isolation), each trajectory alternating the two so both see the same load; then the same for `true`
(the pure sandbox + tool cost). Prints the median per-step latencies, and checks that no process started
below this one is left afterwards.

    python bench/bench_swe_tools.py            # the figure for the README
    pytest bench/bench_swe_tools.py --benchmark-only
"""

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from iquest_core.swe import SWEEnv, mine_repository
from iquest_core.swe.env import broken_snapshot
from iquest_core.swe.toy import build_toy_repository

TRAJECTORIES, STEPS = 8, 10
COMMAND = "cat ops/add_2.py && ls tests | wc -l && python -c 'import ops.add_2'"


def _task(root: Path):
    repo = build_toy_repository(root / "toy")
    return mine_repository(repo, max_tasks=1).tasks[0]


def _interleaved(task, root: Path, command: str) -> tuple[list[float], list[float]]:
    """Per step times of TRAJECTORIES parallel trajectories, each alternating a sandboxed step and the bare
    baseline step (so both see the same machine load)."""
    def trajectory(i):
        sandboxed, bare = [], []
        workspace = root / f"bare-{i}-{len(command)}"
        shutil.copytree(broken_snapshot(task), workspace)
        with SWEEnv(task, max_turns=STEPS + 1) as env:
            env.reset()
            for _ in range(STEPS):
                start = time.perf_counter()
                result = env.step({"tool": "bash", "command": command})
                sandboxed.append(time.perf_counter() - start)
                assert "[exit code 0]" in result.observation, result.observation
                start = time.perf_counter()
                subprocess.run(["bash", "-c", command], cwd=workspace, capture_output=True, check=True)
                bare.append(time.perf_counter() - start)
        return sandboxed, bare
    with ThreadPoolExecutor(TRAJECTORIES) as pool:
        runs = list(pool.map(trajectory, range(TRAJECTORIES)))
    return [t for s, _ in runs for t in s], [t for _, b in runs for t in b]


def _descendants() -> set[int]:
    """Pids of every process below this one."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def measure() -> dict:
    """Median step latencies for COMMAND and for `true` (the pure sandbox + tool cost)."""
    report = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        task = _task(root)
        before = _descendants()
        for name, command in (("command", COMMAND), ("true", "true")):
            sandboxed, bare = _interleaved(task, root, command)
            report[name] = {"steps": len(sandboxed),
                            "sandboxed_median_ms": round(1000 * statistics.median(sandboxed), 1),
                            "bare_median_ms": round(1000 * statistics.median(bare), 1)}
        report["left_running"] = len(_descendants() - before)
    return report


def test_tool_step_overhead(benchmark):
    report = benchmark.pedantic(measure, rounds=1, iterations=1)
    print(report)
    assert report["left_running"] == 0


if __name__ == "__main__":
    print(measure())
