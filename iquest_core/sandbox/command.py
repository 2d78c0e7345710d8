"""`run_command`: one command line (a repository's test suite, a shell tool) in a fresh sandbox.

Contract:

- The command runs in fresh namespaces (isolate.py): no network unless `network=True` (then the host's
  network namespace; add /etc/resolv.conf to ro_binds for DNS), a read-only root with /usr, the
  `ro_binds` (host path -> path inside, read-only), a fresh /proc, a read-only /dev, and writable only:
  `workdir` (a host directory bound read-write at WORKSPACE), /tmp (a fresh tmpfs of memory_mb) and
  /dev/shm (a fresh tmpfs of isolate.SHM_BYTES).
- Run as root, the command runs as uid/gid 65534 (isolate.SANDBOX_UID): workdir and everything below it
  are chowned to that user first (so the command can write there) and stay so; files the command creates
  are owned by it. A ro_binds source that user cannot read is staged (launch.py) so it is still visible.
- Caps for the whole run, all its processes together, through one cgroup (cgroups.py): memory_mb of
  memory (anonymous, shared, memfd, /tmp and /dev/shm files; files written to workdir land on the host
  disk and are not counted) and tasks_max processes + threads; wall clock timeout_s. Where cgroups cannot
  be used, one RuntimeWarning names what is not enforced and only the wall clock holds.
- env: exactly the environment inside (default DEFAULT_ENV); argv[0] is looked up on its PATH.
  cwd: where the command starts, a path inside (default WORKSPACE).
- When it returns, every process the command started is gone and the cgroup is removed.
- stdout / stderr: the first OUTPUT_LIMIT_BYTES of each, decoded as UTF-8 with replacement characters.
  returncode: the command's exit status (128 + signal number when killed by a signal, as a shell reports
  it); after a timeout it is whatever the kill produced and `timed_out` is True; `memory_exceeded` is
  True when the kernel killed a process of the run for the memory cap.
- ValueError names a bad argument; SandboxUnavailable when the sandbox could not start (bwrap's message).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.cgroups import RunCgroup
from iquest_core.sandbox.isolate import SANDBOX_UID, SandboxUnavailable, bwrap_argv
from iquest_core.sandbox.launch import Launched, launcher_argv, stage_binds
from iquest_core.sandbox.limits import check_limits, read_bounded, warn_without_cgroups

WORKSPACE = "/workspace"
DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKSPACE, "LANG": "C.UTF-8"}
_RESERVED = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/proc", "/dev", "/tmp", WORKSPACE)


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    memory_exceeded: bool


def _check_command(argv, workdir, ro_binds, env, cwd) -> None:
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise ValueError(f"argv: expected a non-empty sequence of str, got {argv!r}")
    if not isinstance(workdir, (str, Path)) or not Path(workdir).is_dir():
        raise ValueError(f"workdir: expected an existing host directory, got {workdir!r}")
    if not isinstance(ro_binds, Mapping):
        raise ValueError(f"ro_binds: expected a mapping host path -> path inside, got {type(ro_binds).__name__}")
    for source, destination in ro_binds.items():
        if not isinstance(source, str) or not os.path.exists(source):
            raise ValueError(f"ro_binds: source {source!r} does not exist")
        if not isinstance(destination, str) or not os.path.isabs(destination) \
                or os.path.normpath(destination) in _RESERVED or os.path.normpath(destination) != destination:
            raise ValueError(f"ro_binds: destination {destination!r} must be a normalised absolute path "
                             f"other than {', '.join(_RESERVED)}")
    if env is not None and (not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k for k, v in env.items())):
        raise ValueError(f"env: expected a mapping of str to str, got {env!r}")
    if cwd is not None and (not isinstance(cwd, str) or not os.path.isabs(cwd)):
        raise ValueError(f"cwd: expected an absolute path inside the sandbox, got {cwd!r}")


def _give_to_sandbox_user(root: Path) -> None:
    os.chown(root, SANDBOX_UID, SANDBOX_UID)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), SANDBOX_UID, SANDBOX_UID)


def _announcing(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """argv behind a shell that first writes to its stdin (a pipe: the caller then knows that bwrap set the
    sandbox up and the command is about to run), then execs argv with /dev/null as stdin (and without the
    PWD the shell exports, unless env has one)."""
    unset = "" if "PWD" in env else "unset PWD && "
    return ["/bin/sh", "-c", f'printf s >&0 && {unset}exec "$@" </dev/null', "sh", *argv]


def _started(read_fd: int) -> bool:
    os.set_blocking(read_fd, False)
    try:
        return os.read(read_fd, 1) == b"s"
    except BlockingIOError:
        return False


def run_command(argv: Sequence[str], *, workdir: str | Path, ro_binds: Mapping[str, str] | None = None,
                env: Mapping[str, str] | None = None, timeout_s: float = 60.0, memory_mb: int = 2048,
                tasks_max: int = 256, network: bool = False, cwd: str | None = None) -> CommandResult:
    """Run argv in a fresh sandbox with workdir bound read-write at WORKSPACE; see the module docstring for
    the full contract. Thread-safe."""
    ro_binds = {} if ro_binds is None else ro_binds
    _check_command(argv, workdir, ro_binds, env, cwd)
    check_limits(timeout_s=timeout_s, memory_mb=memory_mb, tasks_max=tasks_max)
    if not isinstance(network, bool):
        raise ValueError(f"network: expected a bool, got {network!r}")
    workdir = Path(workdir).resolve()
    if os.geteuid() == 0:
        _give_to_sandbox_user(workdir)
    [(workdir_source, _), *named], staged = stage_binds([(str(workdir), WORKSPACE), *ro_binds.items()])
    environment = DEFAULT_ENV if env is None else env
    cgroup = RunCgroup.create(memory_mb, tasks_max)
    if cgroup is None:
        warn_without_cgroups()
    started_read, started_write = os.pipe()
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            def build(info_fd: int) -> list[str]:
                bwrap = bwrap_argv(ro_binds=named, workdir=(WORKSPACE, workdir_source), info_fd=info_fd,
                                   env=environment, command=_announcing(argv, environment),
                                   tmp_bytes=memory_mb << 20, network=network, chdir=cwd)
                return launcher_argv(bwrap, procs_files=cgroup.procs_files if cgroup else [], staged=staged)
            deadline = time.monotonic() + timeout_s
            launched = Launched.start(build, stdin=started_write, stdout=out, stderr=err)
            os.close(started_write)
            started_write = -1
            try:
                timed_out = not launched.wait(deadline)
            finally:
                launched.kill()  # whatever the command left running
                launched.reap()
            if not _started(started_read):
                raise SandboxUnavailable(f"the sandbox did not start: {read_bounded(err).strip()}")
            memory_exceeded = cgroup is not None and cgroup.oom_kills() > 0
            return CommandResult(launched.proc.returncode, read_bounded(out), read_bounded(err), timed_out,
                                 memory_exceeded)
    finally:
        os.close(started_read)
        if started_write >= 0:
            os.close(started_write)
        if cgroup is not None:
            cgroup.remove()
