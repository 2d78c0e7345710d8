import json
import subprocess

import pytest

from iquest_core.swe.mine import mine_repository
from iquest_core.swe.tasks import load_tasks
from tests.swe.repos import commit

EXPECTED = {  # commit name -> (FAIL_TO_PASS, PASS_TO_PASS)
    "fix_sub": (["tests/test_sub.py::test_sub_numbers"], ["tests/test_sub.py::test_sub_zero"]),
    "fix_add": (["tests/test_add.py::test_add_numbers"], ["tests/test_add.py::test_add_zero"]),
}


@pytest.mark.parametrize("mode", ["head", "base"])
def test_miner_gives_exactly_the_expected_tasks(mathlib, mode):
    repo, shas, head, base = mathlib
    report = head if mode == "head" else base
    got = {t.fix_commit: (t.FAIL_TO_PASS, t.PASS_TO_PASS) for t in report.tasks}
    want = {shas[name]: sets for name, sets in EXPECTED.items()}
    if mode == "head":  # at HEAD, test_add.py also holds the later test_add_negative, which the revert breaks too
        want[shas["fix_add"]] = (["tests/test_add.py::test_add_negative", "tests/test_add.py::test_add_numbers"],
                                 ["tests/test_add.py::test_add_zero"])
    assert got == want
    assert report.rejections == {"root_commit": 1, "no_fail_to_pass": 1, "binary_change": 1, "no_source_change": 1}
    assert report.flaky_tests == 1  # test_flaky alternates between runs: dropped, in neither set
    assert report.summary()["yield"] == round(2 / 6, 4)


def test_task_records_describe_the_broken_state(mathlib):
    repo, shas, head, base = mathlib
    by_commit = {t.fix_commit: t for t in base.tasks}
    task = by_commit[shas["fix_add"]]
    assert task.base_commit == shas["root"] and task.mode == "base"
    assert "+    return a + b" in task.patch and "test_add_numbers" in task.test_patch
    assert "assert -1 == 5" in task.problem_statement and "test_add_numbers" in task.problem_statement
    assert "return the sum" not in task.problem_statement  # the commit message is off by default
    assert all(t.base_commit == shas["docs"] for t in head.tasks)


def test_commit_message_hint_is_opt_in(mathlib):
    report = mine_repository(mathlib[0], mode="base", max_tasks=1, commit_message=True)
    assert len(report.tasks) == 1 and "Hint (the fixing commit's subject): sub: return the difference" \
        in report.tasks[0].problem_statement


def test_size_limits_reject(mathlib):
    report = mine_repository(mathlib[0], mode="base", max_changed_lines=3, max_commits=5)
    assert not report.tasks and report.rejections["too_many_changed_lines"] == 3


def test_not_a_repository_is_named(tmp_path):
    with pytest.raises(ValueError, match="REPO_DIR: not a git repository"):
        mine_repository(tmp_path)


def test_repository_without_tests_is_named(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    commit(tmp_path, "code", {"a.py": "x = 1\n"})
    with pytest.raises(ValueError, match="has no test files"):
        mine_repository(tmp_path)


def test_cli_mine_writes_tasks_and_nothing_on_bad_input(mathlib, tmp_path, capsys):
    from iquest_core.cli import main

    out = tmp_path / "tasks.jsonl"
    assert main(["swe", "mine", str(tmp_path), "--output", str(out)]) == 2
    assert capsys.readouterr().err.startswith("iquest swe mine: error: REPO_DIR: not a git repository")
    assert not out.exists()
    assert main(["swe", "mine", str(mathlib[0]), "--output", str(out), "--mode", "base", "--max-tasks", "1"]) == 0
    assert [t.fix_commit for t in load_tasks(out)] == [mathlib[1]["fix_sub"]]
    assert json.loads(capsys.readouterr().out)["tasks"] == 1


def test_malformed_task_record_is_named(tmp_path, tasks):
    path = tmp_path / "tasks.jsonl"
    record = tasks[0].to_dict()
    del record["PASS_TO_PASS"]
    path.write_text(json.dumps(tasks[0].to_dict()) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"tasks.jsonl:2: missing field 'PASS_TO_PASS'"):
        load_tasks(path)
    path.write_text(json.dumps({**tasks[0].to_dict(), "mode": "sideways"}) + "\n")
    with pytest.raises(ValueError, match=r"tasks.jsonl:1.mode"):
        load_tasks(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"tasks.jsonl:1: not JSON"):
        load_tasks(path)


def test_artifacts_stand_in_for_untracked_build_outputs(tmp_path):
    """A package that imports a generated module git ignores (as this repository's compiled extension), and
    a conftest that imports the package: without the artifacts pytest stops at the conftest and writes no
    report (tests_error); with them the fix is a task."""
    repo = tmp_path / "built"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    commit(repo, "root", {".gitignore": "pkg/_built.py\n", "pkg/__init__.py": "from pkg import _built\n",
                          "pkg/neg.py": "def neg(x):\n    return x\n", "tests/conftest.py": "import pkg\n",
                          "tests/test_other.py": "def test_ok():\n    pass\n"})
    commit(repo, "fix neg", {"pkg/neg.py": "def neg(x):\n    return -x\n",
                             "tests/test_neg.py": "from pkg.neg import neg\n\n\ndef test_neg():\n    assert neg(2) == -2\n"
                                                  "\n\ndef test_zero():\n    assert neg(0) == 0\n"})
    built = tmp_path / "artifacts"
    (built / "pkg").mkdir(parents=True)
    (built / "pkg" / "_built.py").write_text("READY = True\n")
    without = mine_repository(repo, mode="head")
    assert not without.tasks and without.rejections["tests_error"] == 1
    with pytest.raises(ValueError, match="--artifacts"):
        mine_repository(repo, artifacts=tmp_path / "missing")
    report = mine_repository(repo, mode="head", artifacts=built)
    assert [t.FAIL_TO_PASS for t in report.tasks] == [["tests/test_neg.py::test_neg"]]
    assert report.tasks[0].PASS_TO_PASS == ["tests/test_neg.py::test_zero"]
    assert report.tasks[0].artifacts == str(built)
