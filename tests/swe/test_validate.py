"""`iquest swe validate`: only tasks with gold 3/3 and empty 0/3 reach the validated task file; a test that
flakes in validation is dropped and the pruned task validated again."""

import dataclasses
import json
import shutil
import subprocess

import pytest

from iquest_core.swe import load_tasks, mine_repository
from iquest_core.swe import validate as swe_validate
from iquest_core.swe.verify import Verification
from tests.swe.repos import commit

PLANTED = "tests/test_neg.py::test_planted_flaky"


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_verdicts_and_flaky_tests_of_a_pass():
    ok, fail = Verification(1.0, True, {"a": True, "b": True}), Verification(0.5, False, {"a": True, "b": False})
    broken = Verification(0.0, False, {"a": False, "b": True})
    assert swe_validate.verdict({"gold": [ok] * 3, "empty": [broken] * 3}) == "valid"
    assert swe_validate.verdict({"gold": [ok, fail, ok], "empty": [broken] * 3}) == "flaky"
    assert swe_validate.flaky_tests({"gold": [ok, fail, ok], "empty": [broken] * 3}) == ["b"]
    assert swe_validate.verdict({"gold": [fail] * 3, "empty": [broken] * 3}) == "gold_unresolved"
    assert swe_validate.verdict({"gold": [ok] * 3, "empty": [ok] * 3}) == "empty_resolved"
    assert swe_validate.verdict({"gold": [ok] * 3, "empty": [broken, broken, Verification(0, False, error="x")]}) \
        == "infra_error"


@pytest.mark.parametrize("option, value", [("runs", 1), ("workers", 0)])
def test_bad_options_are_named_and_nothing_written(tasks, tmp_path, option, value):
    with pytest.raises(ValueError, match=f"--{option}"):
        swe_validate.validate_tasks(tasks, tmp_path / "out", **{option: value})
    assert not (tmp_path / "out").exists()


def test_only_sound_tasks_are_written_with_their_reasons(tasks, tmp_path):
    """The two mined tasks are valid; a record whose F2P test passes unfixed (empty resolves it) and one whose
    P2P names a test that does not exist (gold never resolves it) are listed with their reason, not written."""
    easy = dataclasses.replace(tasks[0], instance_id="easy", FAIL_TO_PASS=tasks[0].PASS_TO_PASS)
    impossible = dataclasses.replace(tasks[1], instance_id="impossible",
                                     PASS_TO_PASS=[*tasks[1].PASS_TO_PASS, "tests/test_add.py::test_missing"])
    summary = swe_validate.validate_tasks([*tasks, easy, impossible], tmp_path)
    assert summary == {"tasks": 4, "gold_resolved": 3, "empty_resolved": 1, "flaky": 0, "infra_errors": 0,
                       "valid": 2, "verdicts": {"valid": 2, "empty_resolved": 1, "gold_unresolved": 1},
                       "dropped_tests": 0}
    assert load_tasks(tmp_path / "tasks.jsonl") == tasks
    verdicts = {r["instance_id"]: r["verdict"] for r in records(tmp_path / "validation.jsonl")}
    assert verdicts == {tasks[0].instance_id: "valid", tasks[1].instance_id: "valid", "easy": "empty_resolved",
                        "impossible": "gold_unresolved"}


def test_a_test_flaky_beyond_mining_is_dropped(tmp_path, monkeypatch):
    """A PASS_TO_PASS test that passed all 3+3 mining runs fails in the second gold run of validation (a marker
    file that only that run's workspace has): it is dropped and the pruned task, validated again, is written.
    Mutations that fail it: dropping nothing (the task is then rejected as flaky), keeping the task as it was
    after a flaky first pass, skipping the second pass."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    commit(repo, "root", {"pkg/__init__.py": "", "pkg/neg.py": "def neg(x):\n    return x\n",
                          "tests/test_other.py": "def test_ok():\n    pass\n"})
    commit(repo, "fix neg", {"pkg/neg.py": "def neg(x):\n    return -x\n",
                             "tests/test_neg.py": "import os\nfrom pkg.neg import neg\n\n\ndef test_neg():\n"
                                                  "    assert neg(2) == -2\n\n\ndef test_zero():\n    assert neg(0) == 0\n"
                                                  "\n\ndef test_planted_flaky():\n"
                                                  "    assert not os.path.exists('.flake')\n"})
    [task] = mine_repository(repo, mode="head").tasks
    assert PLANTED in task.PASS_TO_PASS  # it passed every mining run
    real_verify, gold_runs = swe_validate.verify, []

    def flaking_verify(task, workspace, pristine, environment, **kwargs):
        if workspace != pristine:
            gold_runs.append(workspace)
            if len(gold_runs) == 2:
                flaked = tmp_path / "flaked"
                shutil.copytree(workspace, flaked, symlinks=True)
                (flaked / ".flake").touch()
                workspace = flaked
        return real_verify(task, workspace, pristine, environment, **kwargs)

    monkeypatch.setattr(swe_validate, "verify", flaking_verify)
    summary = swe_validate.validate_tasks([task], tmp_path / "out")
    assert len(gold_runs) == 6  # two passes of three gold runs
    assert summary["valid"] == 1 and summary["flaky"] == 1 and summary["dropped_tests"] == 1
    [record] = records(tmp_path / "out" / "validation.jsonl")
    assert record["verdict"] == "valid" and record["dropped_tests"] == [PLANTED]
    assert record["passes"][0]["gold"] == [1.0, 0.5, 1.0] and record["passes"][1]["gold"] == [1.0, 1.0, 1.0]
    assert record["passes"][1]["empty"] == [0.0, 0.0, 0.0]
    [kept] = load_tasks(tmp_path / "out" / "tasks.jsonl")
    assert kept.FAIL_TO_PASS == task.FAIL_TO_PASS
    assert kept.PASS_TO_PASS == [t for t in task.PASS_TO_PASS if t != PLANTED] and kept.PASS_TO_PASS
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
