"""Isolated execution of untrusted programs in fresh kernel namespaces (bubblewrap) under whole-run cgroup
caps: `run_tests` judges a program by its tests (program and tests in two sandboxes, only plain data
between them) and returns a `Verdict`; `run_many` runs many in parallel; `run_command` runs one command
line (a repository's test suite) with a host directory as its working directory."""

from iquest_core.sandbox.execute import STATUSES, Verdict, run_tests
from iquest_core.sandbox.command import CommandResult, run_command
from iquest_core.sandbox.isolate import SandboxUnavailable
from iquest_core.sandbox.pool import run_many

__all__ = ["STATUSES", "CommandResult", "SandboxUnavailable", "Verdict", "run_command", "run_many", "run_tests"]
