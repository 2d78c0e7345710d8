"""A repository's execution environment (an interpreter prefix with its dependencies, mounted read-only
in every sandbox) and test runs in a workspace through the sandbox.

`create_environment(repo, dest)` (`iquest swe env`) makes a virtual environment with the repository's
declared requirements and the test runner, not the repository itself (its code lives only in the
workspace, so the fixed version is nowhere in the environment). Without one, the interpreter running
iquest (with its pytest) serves.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox import run_command
from iquest_core.sandbox.command import WORKSPACE
from iquest_core.swe.testrunner import TestResult, TestRunner

MARKER = "iquest-swe-env.json"
VENV_INSIDE = "/opt/iquest-env"
_REQUIREMENT_FILES = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt", "test-requirements.txt",
                      "dev-requirements.txt", "requirements/tests.txt", "requirements/test.txt", "requirements/dev.txt",
                      "requirements/tests.in")
_TEST_EXTRAS = ("test", "tests", "testing", "dev")


@dataclass(frozen=True)
class RepoEnvironment:
    """prefix: an interpreter installation or virtual environment whose bin/python runs the tests."""

    prefix: Path

    @classmethod
    def current(cls) -> RepoEnvironment:
        return cls(Path(sys.prefix))

    @classmethod
    def load(cls, directory: str | Path | None) -> RepoEnvironment:
        """The environment at directory (one `iquest swe env` made, or any venv), or current() for None."""
        if directory is None:
            return cls.current()
        path = Path(directory).absolute()
        if not (path / "bin" / "python").exists():
            raise ValueError(f"env: no bin/python in {directory}")
        return cls(path)

    @property
    def is_venv(self) -> bool:
        return (self.prefix / "pyvenv.cfg").is_file()

    @property
    def inside(self) -> str:
        """Where the prefix appears in the sandbox: a virtual environment at VENV_INSIDE (so one under
        /tmp is not hidden by the sandbox's own /tmp), an installation at its own path."""
        return VENV_INSIDE if self.is_venv else str(self.prefix)

    def ro_binds(self) -> dict[str, str]:
        """Host path -> sandbox path: the prefix and, for a virtual environment, its base interpreter's
        installation (at its own path: the venv's python links to it)."""
        binds = {str(self.prefix): self.inside}
        if self.is_venv:
            for line in (self.prefix / "pyvenv.cfg").read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home":
                    base = str(Path(value.strip()).resolve().parent)
                    binds[base] = base
        return binds

    def variables(self, python_path: list[str]) -> dict[str, str]:
        return {"PATH": f"{self.inside}/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ":".join(python_path)}


def python_path(workspace: Path) -> list[str]:
    """Import roots inside the sandbox: the workspace, and its src/ for a src layout."""
    return [WORKSPACE, *([f"{WORKSPACE}/src"] if (workspace / "src").is_dir() else [])]


@dataclass(frozen=True)
class TestRun:
    """results: test id -> result, None when the runner wrote no report (error says why)."""

    __test__ = False
    results: dict[str, TestResult] | None
    error: str = ""
    timed_out: bool = False


def run_tests(workspace: Path, test_files: list[str], runner: TestRunner, environment: RepoEnvironment, *,
              timeout_s: float = 300.0, memory_mb: int = 2048) -> TestRun:
    """Run test_files of workspace with runner in the sandbox and read its report."""
    name = f".iquest-report-{secrets.token_hex(8)}.xml"
    report = workspace / name
    result = run_command(runner.command(test_files, f"{WORKSPACE}/{name}"), workdir=workspace,
                         ro_binds=environment.ro_binds(), env=environment.variables(python_path(workspace)),
                         timeout_s=timeout_s, memory_mb=memory_mb)
    try:
        text = report.read_text(errors="replace") if report.is_file() else ""
    finally:
        report.unlink(missing_ok=True)
    if result.timed_out:
        return TestRun(None, f"timed out after {timeout_s}s", timed_out=True)
    if not text:
        return TestRun(None, f"no report (exit {result.returncode}): {(result.stderr or result.stdout)[-500:]}")
    try:
        return TestRun(runner.parse(text))
    except ValueError as e:
        return TestRun(None, str(e))


def declared_requirements(repo: Path) -> list[str]:
    """pip arguments for the repository's declared requirements: requirement files, then the project's
    dependencies, test extras and test dependency groups (PEP 735; "dev" when there is no test one) from
    pyproject.toml."""
    args = []
    for name in _REQUIREMENT_FILES:
        if (repo / name).is_file():
            args += ["-r", str(repo / name)]
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text())
        project = data.get("project", {})
        args += list(project.get("dependencies", []))
        extras, groups = project.get("optional-dependencies", {}), data.get("dependency-groups", {})
        for names in (_TEST_EXTRAS[:-1], _TEST_EXTRAS[-1:]):  # test extras/groups; "dev" only without them
            found = [r for n in names for r in [*extras.get(n, []), *groups.get(n, [])] if isinstance(r, str)]
            if found:
                args += found
                break
    return args


def create_environment(repo: str | Path, dest: str | Path, *, runner_packages: tuple[str, ...] = ("pytest",),
                       python: str = sys.executable) -> RepoEnvironment:
    """A virtual environment at dest with the repository's declared requirements and runner_packages
    installed from the package index (the host's network; sandboxes never get one). ValueError if dest
    exists and is not empty."""
    repo, dest = Path(repo), Path(dest).absolute()
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"--output: {dest} exists and is not empty")
    subprocess.run([python, "-m", "venv", str(dest)], check=True)
    requirements = declared_requirements(repo)
    packages = [*runner_packages, *requirements]
    proc = subprocess.run([str(dest / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
                          capture_output=True, text=True) if packages else None
    if proc is not None and proc.returncode:
        raise ValueError(f"pip install of {repo}'s requirements failed: {proc.stderr.strip()[-800:]}")
    (dest / MARKER).write_text(json.dumps({"repo": str(repo), "requirements": requirements}) + "\n")
    return RepoEnvironment(dest)
