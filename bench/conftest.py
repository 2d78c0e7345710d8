"""Collects each benchmark's median by (group, implementation) and prints, at the end of the run, every
group's medians side by side with each implementation's time relative to the group's subject (the
implementation under test, e.g. the fused op), so ratios always come from one run."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

MEDIANS: dict[str, dict[str, float]] = defaultdict(dict)
SUBJECTS: dict[str, str] = {}


@pytest.fixture
def record_median():
    def record(group: str, impl: str, benchmark, *, subject: bool = False) -> None:
        MEDIANS[group][impl] = benchmark.stats.stats.median
        if subject:
            SUBJECTS[group] = impl
    return record


def pytest_terminal_summary(terminalreporter):
    if not MEDIANS:
        return
    terminalreporter.write_sep("=", "medians side by side (time / subject's time)")
    terminalreporter.write_line(f"{'group':<44}{'implementation':<18}{'median ms':>12}{'x subject':>12}")
    for group, row in MEDIANS.items():
        subject = SUBJECTS.get(group)
        for i, (impl, median) in enumerate(sorted(row.items(), key=lambda kv: kv[0] != subject)):
            ratio = f"{median / row[subject]:>12.3f}" if subject in row else f"{'-':>12}"
            label = f"{impl}{' *' if impl == subject else ''}"
            terminalreporter.write_line(f"{group if i == 0 else '':<44}{label:<18}{median * 1e3:>12.1f}{ratio}")
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "medians.json").write_text(json.dumps({"medians": MEDIANS, "subjects": SUBJECTS}, indent=2))
