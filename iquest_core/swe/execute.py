"""`run_command` for SWE-RL: every tool call and every test run goes through the hardened sandbox
primitive `iquest_core.sandbox.run_command` (its docstring is the contract); this adapter takes the
read-only binds as a list of host paths, each visible at its own path inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from iquest_core.sandbox.command import WORKSPACE, CommandResult
from iquest_core.sandbox.command import run_command as sandbox_run_command

__all__ = ["WORKSPACE", "CommandResult", "run_command"]


def run_command(argv: Sequence[str], *, workdir: str | Path, ro_binds: Sequence[str] = (),
                env: Mapping[str, str] | None = None, timeout_s: float = 60.0, memory_mb: int = 2048,
                tasks_max: int = 256, network: bool = False, cwd: str | None = None) -> CommandResult:
    """sandbox.run_command with each ro_binds path bound read-only at its own absolute path."""
    binds = {str(Path(path).absolute()): str(Path(path).absolute()) for path in ro_binds}
    return sandbox_run_command(argv, workdir=workdir, ro_binds=binds, env=env, timeout_s=timeout_s,
                               memory_mb=memory_mb, tasks_max=tasks_max, network=network, cwd=cwd)
