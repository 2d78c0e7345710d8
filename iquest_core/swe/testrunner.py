"""Test runners behind one interface: which files are tests, the command that runs some test files and
writes a machine-readable report, and the parser of that report into per-test outcomes.

`PytestRunner` (Python): JUnit XML from `--junitxml` (family xunit1, whose testcase elements carry the
file), never the log text. Test ids are pytest node ids: `path/test_x.py::TestClass::test_name[param]`.
Another language adds a runner with the same three methods (`go test -json`, node's `--test-reporter`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

MESSAGE_CHARS = 300  # of a failure's message kept in a result


@dataclass(frozen=True)
class TestResult:
    """outcome: "passed", "failed" (an assertion or an exception in the test), "error" (in set-up or
    collection) or "skipped"; message: the first MESSAGE_CHARS of the failure's message."""

    __test__ = False
    outcome: str
    message: str = ""


class TestRunner(Protocol):
    name: str
    source_suffixes: tuple[str, ...]

    def is_test_file(self, path: str) -> bool: ...
    def command(self, test_files: list[str], report_path: str) -> list[str]: ...
    def parse(self, report: str) -> dict[str, TestResult]: ...


_TEST_DIRS = {"test", "tests", "testing"}
_TEST_NAME = re.compile(r"^(test_.*\.py|.*_test\.py|conftest\.py)$")


class PytestRunner:
    """pytest over the given test files in the workspace, with the interpreter of the task's environment
    (`python` on the sandbox's PATH), no cache directory, no plugins from entry points but junitxml."""

    name = "pytest"
    source_suffixes = (".py",)
    config_files = ("pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "conftest.py")

    def is_test_file(self, path: str) -> bool:
        """A Python file under a test/tests/testing directory, or named test_*.py, *_test.py, conftest.py."""
        parts = PurePosixPath(path).parts
        return path.endswith(".py") and (bool(_TEST_DIRS & set(parts[:-1])) or bool(_TEST_NAME.match(parts[-1])))

    def command(self, test_files: list[str], report_path: str) -> list[str]:
        return ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                "-o", "addopts=", "--rootdir=.", f"--junitxml={report_path}", "--", *test_files]

    def parse(self, report: str) -> dict[str, TestResult]:
        """Node id -> result of every testcase in the JUnit XML text. ValueError if it is not JUnit XML."""
        try:
            root = ET.fromstring(report)
        except ET.ParseError as e:
            raise ValueError(f"report: not JUnit XML ({e})") from None
        results = {}
        for case in root.iter("testcase"):
            results[_node_id(case)] = _result(case)
        return results


def _node_id(case: ET.Element) -> str:
    file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
    module = file[:-3].replace("/", ".") if file.endswith(".py") else ""
    classes = classname[len(module) + 1:] if module and classname.startswith(module + ".") else ""
    return "::".join(p for p in (file or classname, *classes.split("."), name) if p)


def _result(case: ET.Element) -> TestResult:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = case.find(tag)
        if found is not None:
            message = found.get("message") or (found.text or "")
            return TestResult(outcome, message.strip()[:MESSAGE_CHARS])
    return TestResult("passed")


RUNNERS = {"pytest": PytestRunner}
