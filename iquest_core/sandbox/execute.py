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
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.isolate import SANDBOX_UID, bwrap_command, sandbox_runtime

STATUSES = ("passed", "failed", "error", "timeout", "memory")
PROCESS_LIMIT = 32
FILE_LIMIT_BYTES = 16 << 20
OPEN_FILES_LIMIT = 256
OUTPUT_LIMIT_BYTES = 16 << 10  # of stdout and of stderr kept in the verdict
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


def _read_bounded(file) -> str:
    file.seek(0)
    return file.read(OUTPUT_LIMIT_BYTES).decode("utf-8", errors="replace")


def _open_init(info_fd: int, timeout_s: float) -> int | None:
    """A pidfd of the sandbox's PID-namespace init, from bwrap's --info-fd JSON ("child-pid", its pid
    out here, and "pid-namespace"). None if bwrap failed before making it, or sent nothing in time, or
    the init is already gone: the namespace check makes sure a reused pid never names another process."""
    data, poller = b"", select.poll()
    poller.register(info_fd, select.POLLIN)
    deadline = time.monotonic() + timeout_s
    while poller.poll(max(0.0, deadline - time.monotonic()) * 1000) and (chunk := os.read(info_fd, 4096)):
        data += chunk
    try:
        info = json.loads(data)
        pid, namespace = int(info["child-pid"]), int(info["pid-namespace"])
        pidfd = os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, ProcessLookupError):
        return None
    try:
        if os.stat(f"/proc/{pid}/ns/pid").st_ino == namespace:
            return pidfd
    except OSError:
        pass
    os.close(pidfd)
    return None


def _kill_namespace(proc: subprocess.Popen, init_pidfd: int | None) -> None:
    """SIGKILL the namespace's init (the kernel then kills everything in it), then bwrap."""
    if init_pidfd is not None:
        try:
            signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.kill()
    proc.wait()


def _wait_namespace_gone(init_pidfd: int) -> None:
    """Block until the namespace's init has exited. The kernel lets init exit only after every other
    process of its PID namespace is gone; bwrap itself may exit before (it reports the runner's status as
    soon as the runner ends), so waiting for bwrap is not enough."""
    poller = select.poll()
    poller.register(init_pidfd, select.POLLIN)
    if not poller.poll(5000):
        signal.pidfd_send_signal(init_pidfd, signal.SIGKILL)
        poller.poll()


def _supervise(proc: subprocess.Popen, info_read: int, timeout_s: float, start: float) -> bool:
    """Wait for the run up to the wall clock limit, kill its namespace past it, then wait until every
    process of the namespace is gone. Closes info_read; returns whether the run timed out."""
    try:
        init_pidfd = _open_init(info_read, timeout_s)
    finally:
        os.close(info_read)
    try:
        timed_out = False
        try:
            proc.wait(timeout=max(timeout_s - (time.monotonic() - start), 0))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_namespace(proc, init_pidfd)
        if init_pidfd is not None:
            _wait_namespace_gone(init_pidfd)
    finally:
        if init_pidfd is not None:
            os.close(init_pidfd)
    return timed_out


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
    runtime = sandbox_runtime()
    token = secrets.token_hex(16)
    with tempfile.TemporaryFile() as job, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as marker:
        job.write(json.dumps({"program": program, "tests": tests, "limits": _limits(timeout_s, memory_mb),
                              "token": token, "marker_fd": marker.fileno()}).encode())
        job.seek(0)
        info_read, info_write = os.pipe()
        argv = bwrap_command(runtime, info_write, _RUNNER)
        if os.geteuid() == 0:  # setpriv rather than Popen(user=): Popen can then vfork instead of copying our pages
            argv = [runtime.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", *argv]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=job, stdout=out, stderr=err, pass_fds=(info_write, marker.fileno()),
                                    env={})
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)
        timed_out = _supervise(proc, info_read, timeout_s, start)
        duration = time.monotonic() - start
        marker.seek(0)
        status = _classify(proc.returncode, timed_out, marker.read(256).decode(errors="replace"), token)
        stderr = _read_bounded(err)
        if proc.returncode > 128 and not timed_out:
            stderr += f"\n[sandbox] exit status {proc.returncode} (killed by signal {proc.returncode - 128})\n"
        return Verdict(status, _read_bounded(out), stderr, duration)
