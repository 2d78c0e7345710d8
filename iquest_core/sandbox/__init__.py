"""Isolated execution of untrusted programs: `run_tests` runs a program and its tests in fresh kernel
namespaces (bubblewrap) under resource limits and returns a `Verdict`; `run_many` runs many in parallel."""

from iquest_core.sandbox.execute import STATUSES, Verdict, run_tests
from iquest_core.sandbox.command import CommandResult, run_command
from iquest_core.sandbox.isolate import SandboxUnavailable
from iquest_core.sandbox.pool import run_many

__all__ = ["STATUSES", "CommandResult", "SandboxUnavailable", "Verdict", "run_command", "run_many", "run_tests"]
