"""Small git repositories built for the SWE tests, with the tasks their history must give."""

from __future__ import annotations

import subprocess
from pathlib import Path

_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
        "PATH": "/usr/bin:/bin"}

FLAKY = '''
def test_flaky():
    from pathlib import Path
    counter = Path(".flaky-count")
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    assert count % 2 == 0
'''


def commit(repo: Path, message: str, files: dict[str, str | bytes]) -> str:
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=_ENV)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, check=True, env=_ENV)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=_ENV, capture_output=True,
                          text=True).stdout.strip()


def mathlib_repo(repo: Path) -> dict[str, str]:
    """A history of six commits: the root; a real fix (add); a fix with a flaky test beside it (sub); a
    change whose new test passes before it (no fail-to-pass); a change with a binary file; a README edit.
    Returns the commit ids by name."""
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=_ENV)
    shas = {"root": commit(repo, "initial", {
        "mathlib/__init__.py": "",
        "mathlib/add.py": "def add(a, b):\n    return a - b\n",
        "mathlib/sub.py": "def sub(a, b):\n    return a + b\n",
        "tests/test_add.py": "from mathlib.add import add\n\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n",
        "tests/test_sub.py": "from mathlib.sub import sub\n\n\ndef test_sub_zero():\n    assert sub(0, 0) == 0\n",
        "README.md": "mathlib\n"})}
    shas["fix_add"] = commit(repo, "add: return the sum", {
        "mathlib/add.py": "def add(a, b):\n    return a + b\n",
        "tests/test_add.py": "from mathlib.add import add\n\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n\n\n"
                             "def test_add_numbers():\n    assert add(2, 3) == 5\n"})
    shas["fix_sub"] = commit(repo, "sub: return the difference", {
        "mathlib/sub.py": "def sub(a, b):\n    return a - b\n",
        "tests/test_sub.py": "from mathlib.sub import sub\n\n\ndef test_sub_zero():\n    assert sub(0, 0) == 0\n\n\n"
                             "def test_sub_numbers():\n    assert sub(5, 3) == 2\n" + FLAKY})
    shas["no_f2p"] = commit(repo, "mathlib: package docstring", {
        "mathlib/__init__.py": '"""Arithmetic."""\n',
        "tests/test_add.py": "from mathlib.add import add\n\n\ndef test_add_zero():\n    assert add(0, 0) == 0\n\n\n"
                             "def test_add_numbers():\n    assert add(2, 3) == 5\n\n\n"
                             "def test_add_negative():\n    assert add(-1, -1) == -2\n"})
    shas["binary"] = commit(repo, "mul with a logo", {
        "mathlib/mul.py": "def mul(a, b):\n    return a * b\n",
        "tests/test_mul.py": "from mathlib.mul import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
        "logo.png": bytes(range(256))})
    shas["docs"] = commit(repo, "readme", {"README.md": "mathlib: add, sub, mul\n"})
    return shas
