"""The bubblewrap command line of one sandboxed run, and the runtime it may see.

Namespaces: user, mount, PID, network (loopback only, not the host's), IPC, UTS and cgroup, all fresh
(`--unshare-all`). The file system is a read-only tmpfs root holding only the runtime (/usr and, when the
interpreter lives elsewhere, its prefix; both read-only), a fresh /proc and /dev, and the working
directory /sandbox: a fresh tmpfs of WORKDIR_BYTES, the only writable place besides the sandbox's own
/dev/shm (SHM_BYTES). Both are size-capped: tmpfs pages are not counted by the address-space limit.
The environment is empty. bwrap's own init is PID 1 of the new PID namespace: when it exits, the kernel
kills every process left in the namespace before its parent can reap it. `--die-with-parent` ends the
sandbox if the caller dies.

Run as root, the sandbox runs under an unprivileged user id (SANDBOX_UID): the kernel exempts uid 0
from RLIMIT_NPROC, and an unprivileged bwrap must create a user namespace, so the process-count limit
holds. That user can only reach a runtime whose path is world-searchable (pyenv under /root is not):
`sandbox_runtime` then falls back to the system interpreter.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody"
WORKDIR = "/sandbox"
WORKDIR_BYTES = 64 << 20
SHM_BYTES = 16 << 20


class SandboxUnavailable(RuntimeError):
    """bubblewrap or a runtime the sandbox user can reach is missing."""


@dataclass(frozen=True)
class Runtime:
    bwrap: str
    setpriv: str       # util-linux setpriv, to drop root to SANDBOX_UID
    python: str        # interpreter path, the same inside and outside
    prefix: str        # its installation, bound read-only when outside /usr


def _world_searchable(path: Path) -> bool:
    """Every ancestor directory has o+x and the file itself o+r (what an unrelated uid needs)."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


@functools.cache
def sandbox_runtime() -> Runtime:
    """bwrap, setpriv and the Python the sandbox runs: this interpreter's base installation when the sandbox user
    can reach it, else /usr/bin/python3. Raises SandboxUnavailable when neither works."""
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    if not os.access(bwrap, os.X_OK):
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed; scripts/setup.sh installs it")
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    if os.geteuid() == 0 and not os.access(setpriv, os.X_OK):
        raise SandboxUnavailable("setpriv (util-linux) is missing; it drops root before bwrap runs")
    candidates = [(Path(sys._base_executable).resolve(), Path(sys.base_prefix).resolve()),
                  (Path("/usr/bin/python3").resolve(), Path("/usr"))]
    for python, prefix in candidates:
        if python.is_file() and (os.geteuid() != 0 or _world_searchable(python)):
            return Runtime(bwrap, setpriv, str(python), str(prefix))
    raise SandboxUnavailable("no Python interpreter the sandbox user can read (tried "
                             f"{', '.join(str(p) for p, _ in candidates)})")


def _system_dirs() -> list[str]:
    """/usr read-only, plus /bin, /lib, ... as symlinks (merged-/usr systems) or read-only binds."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def bwrap_command(runtime: Runtime, info_fd: int, runner_source: str) -> list[str]:
    """argv running `python -I -S -c runner_source` (isolated mode, standard library only) in fresh
    namespaces, in /sandbox; bwrap writes its JSON info (the outer pid of the namespace's init as
    "child-pid", and its "pid-namespace") to info_fd."""
    args = [runtime.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--hostname", "sandbox", *_system_dirs()]
    if not runtime.prefix.startswith("/usr/") and runtime.prefix != "/usr":
        args += ["--ro-bind", runtime.prefix, runtime.prefix]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--size", str(WORKDIR_BYTES), "--tmpfs", WORKDIR, "--chdir", WORKDIR,
             "--remount-ro", "/", "--info-fd", str(info_fd),
             runtime.python, "-I", "-S", "-c", runner_source]
    return args
