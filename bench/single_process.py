"""The replaced single-process sandbox path, kept only as a baseline (bench_sandbox.py) and as the control
of the attack tests (tests/sandbox/test_attacks.py): the program and then its tests run in ONE interpreter
inside one bubblewrap sandbox, no cgroup, and "passed" means the interpreter printed a random completion
token after both ran and exited with status 0. That token is in the judged program's own memory, which is
exactly why this path could be forged."""

from __future__ import annotations

import math
import secrets
import subprocess
import tempfile
import time

from iquest_core.sandbox.interpreter import verified_python
from iquest_core.sandbox.isolate import bwrap_argv
from iquest_core.sandbox.launch import Launched, launcher_argv, stage_binds

_RUNNER = """import resource, sys
for name, value in {limits!r}.items():
    resource.setrlimit(getattr(resource, name), (value, value))
job = {{"program": {program!r}, "tests": {tests!r}, "token": {token!r}}}
scope = {{"__name__": "__main__", "__builtins__": __builtins__}}
exec(compile(job["program"], "<program>", "exec"), scope)
exec(compile(job["tests"], "<tests>", "exec"), scope)
print(job["token"])
"""


def single_process_passed(program: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> bool:
    """Whether the old path would have said "passed"."""
    python = verified_python()
    named, staged = stage_binds(python.binds)
    token = secrets.token_hex(16)
    limits = {"RLIMIT_AS": memory_mb << 20, "RLIMIT_CPU": math.ceil(timeout_s), "RLIMIT_NPROC": 32}
    source = _RUNNER.format(limits=limits, program=program, tests=tests, token=token)

    def build(info_fd: int) -> list[str]:
        bwrap = bwrap_argv(ro_binds=named, workdir=("/sandbox", 64 << 20), env={}, info_fd=info_fd,
                           command=[python.python, "-I", "-S", "-c", source])
        return launcher_argv(bwrap, procs_files=[], staged=staged)
    with tempfile.TemporaryFile() as out:
        launched = Launched.start(build, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            launched.wait(time.monotonic() + timeout_s)
        finally:
            launched.kill()
            launched.reap()
        out.seek(0)
        lines = out.read().decode(errors="replace").splitlines()
    return launched.proc.returncode == 0 and bool(lines) and lines[-1] == token
