"""Collects each benchmark's median by (group, implementation) and prints them side by side with the
ratios a reader wants (fused vs each baseline), at the end of the run."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

MEDIANS: dict[str, dict[str, float]] = defaultdict(dict)


@pytest.fixture
def record_median():
    def record(group: str, impl: str, benchmark) -> None:
        MEDIANS[group][impl] = benchmark.stats.stats.median
    return record


def pytest_terminal_summary(terminalreporter):
    if not MEDIANS:
        return
    impls = sorted({impl for row in MEDIANS.values() for impl in row})
    baselines = [impl for impl in impls if impl != "fused"]
    header = f"{'case':<28}" + "".join(f"{impl + ' ms':>16}" for impl in impls)
    header += "".join(f"{'fused/' + b:>18}" for b in baselines)
    terminalreporter.write_sep("=", "medians side by side")
    terminalreporter.write_line(header)
    for group, row in MEDIANS.items():
        line = f"{group:<28}" + "".join(f"{row[i] * 1e3:>16.1f}" if i in row else f"{'-':>16}" for i in impls)
        for b in baselines:
            ratio = row["fused"] / row[b] if "fused" in row and b in row else None
            line += f"{ratio:>18.3f}" if ratio else f"{'-':>18}"
        terminalreporter.write_line(line)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "medians.json").write_text(json.dumps(MEDIANS, indent=2))
