"""`run_command`: one command in a fresh sandbox over a writable workspace; every tool call and every
test run of SWE-RL goes through it (the one place to switch to the hardened sandbox primitive).

The sandbox: bubblewrap with every namespace fresh (no network but a private loopback), a read-only root
holding /usr, the read-only `ro_binds` (an interpreter prefix, a repository's environment, each at its
own path), a fresh /proc, /dev and a size-capped /tmp; `workdir` (a host directory) is the only writable
host path, mounted at WORKSPACE. The environment is exactly `env`. The address space of each process is
capped at memory_mb (prlimit); at the wall-clock limit the whole PID namespace is killed, and the call
returns only once every process of the run is gone.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iquest_core.sandbox.execute import _supervise
from iquest_core.sandbox.isolate import SandboxUnavailable, _system_dirs

WORKSPACE = "/workspace"
TMP_BYTES = 256 << 20
OUTPUT_LIMIT_BYTES = 256 << 10  # of stdout and of stderr kept


@dataclass(frozen=True)
class CommandResult:
    """returncode: the command's exit status (128 + N when killed by signal N, -1 when it timed out);
    stdout/stderr: their first OUTPUT_LIMIT_BYTES, decoded with replacement characters."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    memory_exceeded: bool
    duration_s: float = 0.0


def _tool(name: str) -> str:
    path = f"/usr/bin/{name}"
    if not os.access(path, os.X_OK):
        raise SandboxUnavailable(f"{name} is missing ({path}); scripts/setup.sh installs bubblewrap and util-linux")
    return path


def _argv(argv: Sequence[str], workdir: Path, ro_binds: Sequence[str], env: Mapping[str, str], memory_mb: int,
          network: bool, cwd: str, info_fd: int) -> list[str]:
    args = [_tool("bwrap"), "--unshare-all", *(["--share-net"] if network else []), "--die-with-parent",
            "--new-session", "--clearenv", "--hostname", "sandbox", *_system_dirs()]
    for path in ro_binds:
        resolved = str(Path(path).resolve())
        if not resolved.startswith("/usr/"):
            args += ["--ro-bind", resolved, resolved]
            if resolved != str(Path(path).absolute()):
                args += ["--ro-bind", resolved, str(Path(path).absolute())]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--bind", str(workdir), WORKSPACE, "--proc", "/proc", "--dev", "/dev",
             "--size", str(TMP_BYTES), "--tmpfs", "/tmp", "--chdir", cwd, "--remount-ro", "/",
             "--info-fd", str(info_fd), _tool("prlimit"), f"--as={memory_mb << 20}", "--core=0", "--", *argv]
    return args


def _read(file) -> str:
    file.seek(0)
    return file.read(OUTPUT_LIMIT_BYTES).decode("utf-8", errors="replace")


def run_command(argv: Sequence[str], *, workdir: str | Path, ro_binds: Sequence[str] = (),
                env: Mapping[str, str] | None = None, timeout_s: float = 60.0, memory_mb: int = 2048,
                tasks_max: int = 256, network: bool = False, cwd: str | None = None) -> CommandResult:
    """Run argv in a fresh sandbox whose only writable host directory is workdir (at WORKSPACE); cwd
    (default WORKSPACE) is a path inside the sandbox. tasks_max is accepted for the hardened sandbox's
    cgroup cap and not enforced here. Raises ValueError on bad arguments."""
    workdir = Path(workdir)
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv: expected a non-empty list of str, got {argv!r}")
    if not workdir.is_dir():
        raise ValueError(f"workdir: not a directory: {workdir}")
    if not 0 < timeout_s <= 3600:
        raise ValueError(f"timeout_s: expected seconds in (0, 3600], got {timeout_s!r}")
    if not isinstance(memory_mb, int) or memory_mb < 64:
        raise ValueError(f"memory_mb: expected an int >= 64, got {memory_mb!r}")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        info_read, info_write = os.pipe()
        command = _argv(argv, workdir.resolve(), ro_binds, env or {}, memory_mb, network, cwd or WORKSPACE,
                        info_write)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(info_write,),
                                    env={})
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)
        timed_out = _supervise(proc, info_read, timeout_s, start)
        stderr = _read(err)
        return CommandResult(-1 if timed_out else proc.returncode, _read(out), stderr, timed_out,
                             "MemoryError" in stderr[-2000:] or "Cannot allocate memory" in stderr[-2000:],
                             time.monotonic() - start)
