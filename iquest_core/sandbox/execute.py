"""`run_tests`: one untrusted program plus its tests in a fresh sandbox, returning a `Verdict`.

Limits inside the sandbox (set by runner.py before any untrusted code runs): address space memory_mb,
CPU time ceil(timeout_s) seconds per process, PROCESS_LIMIT processes, files (stdout/stderr included)
up to FILE_LIMIT_BYTES, OPEN_FILES_LIMIT descriptors, no core dumps; wall clock timeout_s for the run.
The run's working directory is a fresh tmpfs of isolate.WORKDIR_BYTES, gone with the run.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.interpreter import sandbox_python
from iquest_core.sandbox.isolate import bwrap_argv
from iquest_core.sandbox.launch import Launched, launcher_argv, stage_binds
from iquest_core.sandbox.limits import OUTPUT_LIMIT_BYTES, read_bounded

WORKDIR, WORKDIR_BYTES = "/sandbox", 64 << 20

STATUSES = ("passed", "failed", "error", "timeout", "memory")
PROCESS_LIMIT = 32
FILE_LIMIT_BYTES = 16 << 20
OPEN_FILES_LIMIT = 256
_EXIT_FAILED, _EXIT_COMPILE, _EXIT_MEMORY = 1, 3, 4  # runner.py's exit codes
_TIMEOUT_SIGNALS = (signal.SIGKILL, signal.SIGXCPU)
_RUNNER = (Path(__file__).with_name("runner.py")).read_text()


@dataclass(frozen=True)
class Verdict:
    """status: "passed" (program and tests ran to the end), "failed" (an exception, an assertion, a
    non-zero exit or an early exit; also a write past the file-size limit, EFBIG in Python), "error" (does
    not compile, killed by a signal such as a crash), "timeout" (wall clock or CPU limit), "memory"
    (MemoryError under the address-space limit); "error" also when the sandbox could not start, with
    bubblewrap's message in stderr. stdout/stderr: the first OUTPUT_LIMIT_BYTES of each,
    decoded as UTF-8 with replacement characters."""

    status: str
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _check_args(program, tests, timeout_s, memory_mb, language) -> None:
    for name, value in (("program", program), ("tests", tests)):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected Python source as str, got {type(value).__name__}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 3600:
        raise ValueError(f"timeout_s: expected seconds in (0, 3600], got {timeout_s!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 64:
        raise ValueError(f"memory_mb: expected an int >= 64 (the interpreter alone needs ~30 MiB), got {memory_mb!r}")
    if language != "python":
        raise ValueError(f"language: only 'python' is supported, got {language!r}")


def _limits(timeout_s: float, memory_mb: int) -> dict[str, int]:
    return {"RLIMIT_AS": memory_mb << 20, "RLIMIT_CPU": math.ceil(timeout_s), "RLIMIT_NPROC": PROCESS_LIMIT,
            "RLIMIT_FSIZE": FILE_LIMIT_BYTES, "RLIMIT_NOFILE": OPEN_FILES_LIMIT, "RLIMIT_CORE": 0}


def _classify(returncode: int, timed_out: bool, marker: str, token: str) -> str:
    if timed_out:
        return "timeout"
    if not marker.startswith("started "):  # the sandbox did not come up (bwrap's message is in stderr)
        return "error"
    if returncode == 0:
        return "passed" if marker == "started " + token else "failed"
    if returncode > 128 and returncode - 128 in _TIMEOUT_SIGNALS:  # bwrap reports a signal as 128 + signo
        return "timeout"
    if returncode == _EXIT_MEMORY:
        return "memory"
    if returncode == _EXIT_COMPILE or returncode > 128:
        return "error"
    return "failed"


def run_tests(program: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 1024,
              language: str = "python") -> Verdict:
    """Run `program` then `tests` in one Python interpreter inside a fresh sandbox (see isolate.py) and
    return its Verdict. Every process the run started is gone when this returns. Thread-safe."""
    _check_args(program, tests, timeout_s, memory_mb, language)
    python = sandbox_python()
    named, staged = stage_binds(python.binds)
    token = secrets.token_hex(16)
    with tempfile.TemporaryFile() as job, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as marker:
        job.write(json.dumps({"program": program, "tests": tests, "limits": _limits(timeout_s, memory_mb),
                              "token": token, "marker_fd": marker.fileno()}).encode())
        job.seek(0)

        def build(info_fd: int) -> list[str]:
            bwrap = bwrap_argv(ro_binds=named, workdir=(WORKDIR, WORKDIR_BYTES), env={}, info_fd=info_fd,
                               command=[python.python, "-I", "-S", "-c", _RUNNER])
            return launcher_argv(bwrap, procs_files=[], staged=staged)
        start = time.monotonic()
        launched = Launched.start(build, stdin=job, stdout=out, stderr=err, pass_fds=(marker.fileno(),))
        try:
            timed_out = not launched.wait(start + timeout_s)
        finally:
            launched.kill()
            launched.reap()
        duration = time.monotonic() - start
        returncode = launched.proc.returncode
        marker.seek(0)
        status = _classify(returncode, timed_out, marker.read(256).decode(errors="replace"), token)
        stderr = read_bounded(err)
        if returncode > 128 and not timed_out:
            stderr += f"\n[sandbox] exit status {returncode} (killed by signal {returncode - 128})\n"
        return Verdict(status, read_bounded(out), stderr, duration)
