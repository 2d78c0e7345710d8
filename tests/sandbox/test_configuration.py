"""Which interpreter runs inside (the package's own, or IQUEST_SANDBOX_PYTHON, never a silent fallback),
what happens without cgroup permission (one warning naming what is not enforced, per-process limits
instead), and that no run leaves its cgroup behind."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from iquest_core.sandbox import SandboxUnavailable, cgroups, limits, run_tests
from iquest_core.sandbox.interpreter import ENV_VAR

PRINT_VERSION = ("import sys\nprint(sys.version)", "")


def test_the_package_interpreter_runs_inside_by_default(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert run_tests(*PRINT_VERSION).stdout.strip() == sys.version


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system Python to configure")
def test_a_configured_interpreter_runs_inside(monkeypatch):
    expected = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version)"], capture_output=True,
                              text=True, check=True).stdout.strip()
    monkeypatch.setenv(ENV_VAR, "/usr/bin/python3")
    assert run_tests(*PRINT_VERSION).stdout.strip() == expected


@pytest.mark.parametrize("configured, message", [("python3", "absolute path"), ("/nonexistent/python", "absolute path"),
                                                 ("/bin/true", "not a Python interpreter")])
def test_a_bad_configured_interpreter_is_a_clear_error(monkeypatch, configured, message):
    monkeypatch.setenv(ENV_VAR, configured)
    with pytest.raises(SandboxUnavailable, match=message):
        run_tests(*PRINT_VERSION)


def test_an_interpreter_that_cannot_run_inside_is_a_clear_error(monkeypatch, tmp_path):
    fake = tmp_path / "python"  # answers like a Python on the host; its directory is not bound inside
    fake.write_text("#!/bin/sh\necho /usr\necho /usr\necho '3.99.0 (fake)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(fake))
    with pytest.raises(SandboxUnavailable, match="does not run inside the sandbox"):
        run_tests(*PRINT_VERSION)


def test_without_cgroups_one_warning_names_what_is_not_enforced(monkeypatch):
    monkeypatch.setattr(cgroups, "_layout", lambda: "cgroup v1: Permission denied (simulated)")
    monkeypatch.setattr(limits, "_warned", type(limits._warned)())
    with pytest.warns(RuntimeWarning, match="NOT enforced: the whole-run memory cap") as caught:
        verdict = run_tests("x = bytearray(600 << 20)", "", memory_mb=256)
    assert "Permission denied (simulated)" in str(caught[0].message)
    assert verdict.status == "memory"  # RLIMIT_AS per process instead
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_tests("def f():\n    return 1\n", "assert f() == 1").passed


@pytest.mark.skipif(cgroups.why_not() is not None, reason="no cgroup permission here")
def test_runs_leave_no_cgroup_behind():
    run_tests("while True:\n    pass\n", "", timeout_s=0.5)
    run_tests("x = 1", "")
    layout = cgroups._layout()
    mine = f"iquest-sandbox-{os.getpid()}-"
    assert not [d for parent in layout[1].values() for d in os.listdir(parent) if d.startswith(mine)]
