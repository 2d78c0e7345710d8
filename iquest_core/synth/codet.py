"""CodeT-style dual agreement: which generated solution and tests to trust, from their pass matrix.

    choice = dual_agreement(statuses, min_solutions=2, min_tests=2)
    # statuses[i][j]: sandbox status of solution i against test j ("passed", "failed", "timeout", ...)

Solutions are grouped by the exact set of tests they pass (a "passed" status; a timeout, error or
failure is not a pass). A group's score is (number of solutions) x (number of tests passed). The
winner must be unique (a tie between groups with different test sets is a disagreement), hold at
least min_solutions solutions that agree and pass at least min_tests tests. The accepted record keeps
the winning group's first solution and exactly the tests it passes, so every kept (solution, test)
pair passed in the sandbox. Otherwise `Choice.reason` says why nothing is kept.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    solution: int | None          # index of the kept solution, None when rejected
    tests: tuple[int, ...]        # indices of the kept tests
    agreeing: tuple[int, ...]     # the solutions that pass exactly those tests
    reason: str | None            # why nothing is kept


def dual_agreement(statuses: list[list[str]], *, min_solutions: int = 2, min_tests: int = 2) -> Choice:
    if not statuses or not statuses[0]:
        return Choice(None, (), (), "no-candidates")
    if any(len(row) != len(statuses[0]) for row in statuses):
        raise ValueError("statuses: expected one status per (solution, test) pair, rows of equal length")
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(statuses):
        groups[tuple(j for j, status in enumerate(row) if status == "passed")].append(i)
    scored = sorted(((len(members) * len(tests), tests, members) for tests, members in groups.items() if tests),
                    reverse=True)
    if not scored:
        return Choice(None, (), (), "no-solution-passes-any-test")
    score, tests, members = scored[0]
    if len(scored) > 1 and scored[1][0] == score:
        return Choice(None, (), (), "disagreement:tied-consensus")
    if len(members) < min_solutions:
        return Choice(None, tests, tuple(members), f"disagreement:only-{len(members)}-solutions-agree")
    if len(tests) < min_tests:
        return Choice(None, tests, tuple(members), f"too-few-passing-tests:{len(tests)}")
    return Choice(members[0], tests, tuple(members), None)
