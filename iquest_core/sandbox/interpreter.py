"""The Python interpreter sandboxed runs use: the package's own (this process's base interpreter), or the
one named by the environment variable IQUEST_SANDBOX_PYTHON. Never another one silently: if the chosen
interpreter cannot run inside the sandbox, `sandbox_python()` raises SandboxUnavailable saying why.

Inside, the interpreter sits at its host path, its installation prefix bound read-only (staged by
launch.py when the sandbox user cannot reach it, e.g. pyenv under /root)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.isolate import SandboxUnavailable

ENV_VAR = "IQUEST_SANDBOX_PYTHON"


@dataclass(frozen=True)
class Interpreter:
    python: str          # path of the executable, the same inside and outside
    prefixes: tuple[str, ...]  # its installation (sys.base_prefix, sys.base_exec_prefix), bound read-only
    version: str         # sys.version of that interpreter

    @property
    def binds(self) -> list[tuple[str, str]]:
        """(host, inside) read-only binds that make it runnable inside: its prefixes outside /usr."""
        return [(p, p) for p in self.prefixes if p != "/usr" and not p.startswith("/usr/")]


def _describe(python: str) -> Interpreter:
    """Ask the interpreter itself (on the host) for its prefixes and version."""
    try:
        out = subprocess.run([python, "-I", "-S", "-c", "import sys; print(sys.base_prefix); "
                              "print(sys.base_exec_prefix); print(sys.version)"], capture_output=True,
                             text=True, timeout=30, env={}, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError) as error:
        raise SandboxUnavailable(f"{ENV_VAR}={python!r} does not run: {error}") from None
    if len(out) < 3 or not all(os.path.isabs(p) for p in out[:2]):
        raise SandboxUnavailable(f"{ENV_VAR}={python!r} is not a Python interpreter (it printed {out!r:.200})")
    prefixes = tuple(dict.fromkeys(str(Path(p).resolve()) for p in out[:2]))
    return Interpreter(str(Path(python).resolve()), prefixes, out[2])


@functools.cache
def _chosen(configured: str | None) -> Interpreter:
    if configured is not None:
        if not os.path.isabs(configured) or not os.access(configured, os.X_OK):
            raise SandboxUnavailable(f"{ENV_VAR}={configured!r} is not an absolute path to an executable")
        return _describe(configured)
    prefixes = tuple(dict.fromkeys(str(Path(p).resolve()) for p in (sys.base_prefix, sys.base_exec_prefix)))
    return Interpreter(str(Path(sys._base_executable).resolve()), prefixes, sys.version)


def sandbox_python() -> Interpreter:
    """The interpreter for sandboxed runs (IQUEST_SANDBOX_PYTHON, read at each call, else the package's own)."""
    return _chosen(os.environ.get(ENV_VAR) or None)


@functools.cache
def _verify(interpreter: Interpreter) -> Interpreter:
    from iquest_core.sandbox.command import run_command
    with tempfile.TemporaryDirectory() as workdir:
        result = run_command([interpreter.python, "-I", "-S", "-c", "import sys; print(sys.version)"],
                             workdir=workdir, ro_binds=dict(interpreter.binds), timeout_s=60, memory_mb=256)
    if result.returncode != 0 or result.stdout.strip() != interpreter.version:
        raise SandboxUnavailable(f"the sandbox interpreter {interpreter.python} ({interpreter.version.split()[0]}) "
                                 f"does not run inside the sandbox (exit status {result.returncode}): "
                                 f"{(result.stdout + result.stderr).strip()[:500]}")
    return interpreter


def verified_python() -> Interpreter:
    """sandbox_python(), once checked (per process and interpreter) to run inside the sandbox and report
    the same version there; SandboxUnavailable otherwise."""
    return _verify(sandbox_python())
