import pytest

from iquest_core.swe.reward import EFFICIENCY_WEIGHT, group_rewards, trajectory_cost
from iquest_core.swe.testrunner import PytestRunner

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_m" file="tests/test_m.py" line="3" name="test_ok" time="0.001"/>
<testcase classname="tests.test_m.TestBox" file="tests/test_m.py" line="9" name="test_p[1-a]" time="0.001">
<failure message="assert 1 == 2">long traceback</failure></testcase>
<testcase classname="tests.test_m" file="tests/test_m.py" line="12" name="test_e">
<error message="fixture boom"/></testcase>
<testcase classname="tests.test_m" file="tests/test_m.py" line="15" name="test_s"><skipped message="later"/></testcase>
</testsuite></testsuites>"""


def test_rewards_rank_resolved_above_unresolved_and_short_above_long():
    costs = [trajectory_cost(t, n, 10, 1000) for t, n in [(2, 100), (6, 600), (4, 300), (10, 1000)]]
    rewards = group_rewards([1.0, 1.0, 0.5, None], [True, True, False, False], costs)
    assert rewards[3] is None  # infra error: not scored
    assert rewards[2] == 0.5 < 1.0 <= rewards[1] < rewards[0] <= 1.0 + EFFICIENCY_WEIGHT
    mean = (costs[0] + costs[1]) / 2
    assert rewards[0] == pytest.approx(1.0 + EFFICIENCY_WEIGHT * (1 - costs[0] / mean))
    assert rewards[1] == 1.0  # longer than the mean: bonus clamped at 0
    assert group_rewards([1.0, 0.0], [True, False], [0.0, 0.3]) == [1.0, 0.0]  # mean cost 0: no bonus


def test_rewards_reject_ragged_input():
    with pytest.raises(ValueError, match="equal lengths"):
        group_rewards([1.0], [True, False], [0.1])


def test_junit_ids_and_outcomes():
    results = PytestRunner().parse(JUNIT)
    assert {k: v.outcome for k, v in results.items()} == {
        "tests/test_m.py::test_ok": "passed", "tests/test_m.py::TestBox::test_p[1-a]": "failed",
        "tests/test_m.py::test_e": "error", "tests/test_m.py::test_s": "skipped"}
    assert results["tests/test_m.py::TestBox::test_p[1-a]"].message == "assert 1 == 2"
    with pytest.raises(ValueError, match="not JUnit XML"):
        PytestRunner().parse("passed 3 tests")


@pytest.mark.parametrize("path,is_test", [("tests/a.py", True), ("pkg/test_a.py", True), ("a_test.py", True),
                                          ("conftest.py", True), ("pkg/a.py", False), ("tests/data.json", False),
                                          ("latest.py", False)])
def test_test_file_classifier(path, is_test):
    assert PytestRunner().is_test_file(path) == is_test
