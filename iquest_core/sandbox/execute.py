"""`run_tests`: an untrusted program and its tests, each in its own sandbox, returning a `Verdict`.

The program process (inside/program_side.py) runs the program, then serves calls of its top-level
callables. The test process (inside/test_side.py) runs the tests with proxies for those callables: only
plain data crosses the channel between them (inside/wire.py), and the test process never runs program
code. The verdict is what the test process writes to a pipe that only it holds; the program process can
reach neither that pipe nor the test process (separate PID, mount and user namespaces). Both processes
and everything they start share one cgroup (memory_mb, TASKS_MAX), made before either starts and removed
after the verdict; the wall clock is timeout_s for the whole run.

Per process, in the program's sandbox: CPU time ceil(timeout_s) s, files (stdout/stderr included) up to
FILE_LIMIT_BYTES, OPEN_FILES_LIMIT descriptors, no core dumps; where no cgroup can be made, also an
address-space limit of memory_mb and PROCESS_LIMIT processes of the sandbox user (RLIMIT_NPROC).
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.cgroups import RunCgroup
from iquest_core.sandbox.inside import wire
from iquest_core.sandbox.interpreter import verified_python
from iquest_core.sandbox.isolate import bwrap_argv
from iquest_core.sandbox.launch import Launched, launcher_argv, stage_binds
from iquest_core.sandbox.limits import check_limits, read_bounded, warn_without_cgroups

STATUSES = ("passed", "failed", "error", "timeout", "memory")
TASKS_MAX = 256       # processes + threads of the whole run (both sandboxes): a 64-thread pool fits
PROCESS_LIMIT = 32    # RLIMIT_NPROC, only where no cgroup can be made
FILE_LIMIT_BYTES = 16 << 20
OPEN_FILES_LIMIT = 256
WORKDIR, WORKDIR_BYTES = "/sandbox", 64 << 20
INSIDE = "/iquest-inside"  # where inside/ is bound
_EXIT_COMPILE, _EXIT_MEMORY = 3, 4  # program_side.py's exit codes
_GONE_GRACE_S = 1.0   # how long to wait for the program process's own exit status once it is gone


@dataclass(frozen=True)
class Verdict:
    """status: "passed" (the program loaded, the tests ran to their end and the program process was still
    there), "failed" (a test failed, the program raised or exited early, a value that is not plain data
    crossed, a write past the file-size limit), "error" (the program or the tests do not compile, the
    program process crashed, the sandbox did not start), "timeout" (wall clock or CPU limit), "memory"
    (the kernel killed a process of the run for the memory cap, or MemoryError; this wins over timeout).
    stdout: what the program printed; tests_stdout: what the tests printed (the program cannot write
    there); stderr: the program's then the tests' error output. Each stream keeps its first
    OUTPUT_LIMIT_BYTES, decoded as UTF-8 with replacement characters."""

    status: str
    stdout: str
    stderr: str
    duration_s: float
    tests_stdout: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _check_args(program, tests, timeout_s, memory_mb, language) -> None:
    for name, value in (("program", program), ("tests", tests)):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected Python source as str, got {type(value).__name__}")
    check_limits(timeout_s=timeout_s, memory_mb=memory_mb)
    if language != "python":
        raise ValueError(f"language: only 'python' is supported, got {language!r}")


def _program_limits(timeout_s: float, memory_mb: int, cgroup: RunCgroup | None) -> dict[str, int]:
    limits = {"RLIMIT_CPU": math.ceil(timeout_s), "RLIMIT_FSIZE": FILE_LIMIT_BYTES,
              "RLIMIT_NOFILE": OPEN_FILES_LIMIT, "RLIMIT_CORE": 0}
    if cgroup is None:
        limits |= {"RLIMIT_AS": memory_mb << 20, "RLIMIT_NPROC": PROCESS_LIMIT}
    return limits


def _classify(timed_out: bool, oom_kills: int, program_exit: int | None, result: dict, started: bool) -> str:
    if oom_kills or program_exit == _EXIT_MEMORY:
        return "memory"
    if timed_out:
        return "timeout"
    if result.get("status") == "passed":
        return "passed"
    crashed = program_exit is not None and program_exit > 128
    if not started or crashed or program_exit == _EXIT_COMPILE or result.get("status") == "error":
        return "error"
    return "failed"


class _Run:
    """The two sandboxes of one run_tests call and their files."""

    def __init__(self, stack: ExitStack, timeout_s: float, memory_mb: int, cgroup: RunCgroup | None) -> None:
        python = verified_python()
        inside = str(Path(__file__).with_name("inside"))
        self.named, self.staged = stage_binds([*python.binds, (inside, INSIDE)])
        self.python, self.cgroup = python.python, cgroup
        self.files = {name: stack.enter_context(tempfile.TemporaryFile()) for name in
                      ("program_job", "program_out", "program_err", "tests_job", "tests_out", "tests_err")}
        self.limits = _program_limits(timeout_s, memory_mb, cgroup)

    def argv(self, module: str, info_fd: int) -> list[str]:
        boot = f"import sys; sys.path.insert(0, {INSIDE!r}); import {module}; {module}.entry()"
        bwrap = bwrap_argv(ro_binds=self.named, workdir=(WORKDIR, WORKDIR_BYTES), env={}, info_fd=info_fd,
                           command=[self.python, "-I", "-S", "-c", boot])
        return launcher_argv(bwrap, procs_files=self.cgroup.procs_files if self.cgroup else [], staged=self.staged)

    def spawn(self, side: str, job: dict, pass_fds: tuple[int, ...]) -> Launched:
        self.files[f"{side}_job"].write(wire.encode(job))
        self.files[f"{side}_job"].seek(0)
        module = "program_side" if side == "program" else "test_side"
        return Launched.spawn(lambda info_fd: self.argv(module, info_fd), stdin=self.files[f"{side}_job"],
                              stdout=self.files[f"{side}_out"], stderr=self.files[f"{side}_err"], pass_fds=pass_fds)


def _read_result(result_read: int) -> dict:
    """The test process's verdict dict, or {} when it wrote none."""
    os.set_blocking(result_read, False)
    try:
        data = os.read(result_read, 1 << 16)
        result = wire.decode(data[4:])
    except (BlockingIOError, ValueError):
        return {}
    return result if type(result) is dict else {}


def run_tests(program: str, tests: str, *, timeout_s: float = 10.0, memory_mb: int = 1024,
              language: str = "python") -> Verdict:
    """Run `program` in one sandboxed process and `tests` in another that calls the program's top-level
    functions through proxies (see the module docstring and the README's threat model); return the Verdict.
    Every process the run started is gone and its cgroup removed when this returns. Thread-safe."""
    _check_args(program, tests, timeout_s, memory_mb, language)
    cgroup = RunCgroup.create(memory_mb, TASKS_MAX)
    if cgroup is None:
        warn_without_cgroups()
    program_end, tests_end = socket.socketpair()
    result_read, result_write = os.pipe()
    launched: list[Launched] = []
    try:
        with ExitStack() as stack:
            run = _Run(stack, timeout_s, memory_mb, cgroup)
            start = time.monotonic()
            launched.append(run.spawn("program", {"program": program, "limits": run.limits,
                                                  "channel_fd": program_end.fileno()}, (program_end.fileno(),)))
            launched.append(run.spawn("tests", {"tests": tests, "channel_fd": tests_end.fileno(),
                                                "result_fd": result_write}, (tests_end.fileno(), result_write)))
            program_end.close()
            tests_end.close()
            os.close(result_write)
            result_write = -1
            program_box, tests_box = launched
            program_box.attach()
            tests_box.attach()
            timed_out = not tests_box.wait(start + timeout_s)
            result = {} if timed_out else _read_result(result_read)
            if result.get("program_gone"):
                program_box.wait(min(start + timeout_s, time.monotonic() + _GONE_GRACE_S))
            program_exit = program_box.proc.poll()
            for box in launched:  # before the output files are read (kill and reap are idempotent)
                box.kill()
                box.reap()
            duration = time.monotonic() - start
            oom_kills = cgroup.oom_kills() if cgroup else 0
            status = _classify(timed_out, oom_kills, program_exit, result,
                               program_box.started and tests_box.started)
            stderr = read_bounded(run.files["program_err"]) + read_bounded(run.files["tests_err"])
            if program_exit is not None and program_exit > 128:
                stderr += f"\n[sandbox] program process exit status {program_exit} (killed by signal " \
                          f"{program_exit - 128})\n"
            return Verdict(status, read_bounded(run.files["program_out"]), stderr, duration,
                           read_bounded(run.files["tests_out"]))
    finally:
        for box in launched:
            box.kill()
            box.reap()
        program_end.close()
        tests_end.close()
        os.close(result_read)
        if result_write >= 0:
            os.close(result_write)
        if cgroup is not None:
            cgroup.remove()
