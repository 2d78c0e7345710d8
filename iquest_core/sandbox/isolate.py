"""The bubblewrap command line of one sandboxed process, and the host tools it needs.

Namespaces: user, mount, PID, network (loopback only, unless `network=True`), IPC, UTS and cgroup, all
fresh (`--unshare-all`). The file system is a read-only tmpfs root holding /usr (with /bin, /lib, ...),
the read-only binds the caller names, a fresh /proc, a read-only /dev with the usual nodes (null, zero,
full, random, urandom, tty) and, writable: the working directory (a size-capped tmpfs, or a host
directory bound read-write), /dev/shm (a size-capped tmpfs) and, where asked, /tmp (a size-capped tmpfs).
The environment is exactly the one given. bwrap's own init is PID 1 of the new PID namespace: when it
exits, the kernel kills every process left in the namespace. `--die-with-parent` ends the sandbox if
the caller dies; `--new-session` keeps it off the caller's terminal.

Run as root, the sandbox runs under an unprivileged user id (SANDBOX_UID, dropped by setpriv before
bwrap starts). A bind source that this user cannot reach (say, an interpreter under /root) is staged by
launch.py: bound, as root, in a private mount namespace onto STAGE_DIR, which bwrap can read.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody"
SHM_BYTES = 16 << 20
STAGE_DIR = "/run/iquest-sandbox"  # its subdirectories stay empty on the host; staged binds are mounted onto
                                   # them in private mount namespaces


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or, run as root, setpriv / unshare / mount) is missing, or no interpreter can run inside."""


@dataclass(frozen=True)
class Tools:
    bwrap: str
    setpriv: str | None   # util-linux tools used only when run as root
    unshare: str | None
    mount: str | None


@functools.cache
def host_tools() -> Tools:
    """The host programs that start a sandbox. Raises SandboxUnavailable naming a missing one."""
    def find(name: str) -> str:
        path = shutil.which(name) or f"/usr/bin/{name}"
        if not os.access(path, os.X_OK):
            raise SandboxUnavailable(f"{name} is not installed; scripts/setup.sh installs bubblewrap and util-linux")
        return path
    if os.geteuid() != 0:
        return Tools(find("bwrap"), None, None, None)
    return Tools(find("bwrap"), find("setpriv"), find("unshare"), find("mount"))


def reachable_by_sandbox_user(path: str) -> bool:
    """Whether SANDBOX_UID can open path: o+x on every ancestor and o+r on it (always when not root)."""
    if os.geteuid() != 0:
        return True
    try:
        target = Path(path)
        if not target.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in target.parents)
    except OSError:
        return False


def _system_dirs() -> list[str]:
    """/usr read-only, plus /bin, /lib, ... as symlinks (merged-/usr systems) or read-only binds."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def bwrap_argv(*, ro_binds: Sequence[tuple[str, str]], workdir: tuple[str, str | int], env: Mapping[str, str],
               info_fd: int, command: Sequence[str], tmp_bytes: int | None = None, network: bool = False,
               chdir: str | None = None) -> list[str]:
    """bwrap's argv running `command` (argv[0] looked up on env's PATH inside).

    ro_binds: (source as bwrap sees it, destination inside). workdir: (destination, host directory to bind
    read-write) or (destination, size in bytes of a fresh tmpfs). tmp_bytes: a tmpfs of that size at /tmp.
    chdir: the directory the command starts in (default: the working directory). bwrap writes its JSON
    info (the outer pid of the namespace's init as "child-pid", and its "pid-namespace") to info_fd."""
    args = [host_tools().bwrap, "--unshare-all", *(["--share-net"] if network else []), "--die-with-parent",
            "--new-session", "--hostname", "sandbox", *_system_dirs()]
    for source, destination in ro_binds:
        args += ["--ro-bind", source, destination]
    destination, backing = workdir
    if isinstance(backing, int):
        args += ["--size", str(backing), "--tmpfs", destination]
    else:
        args += ["--bind", backing, destination]
    if tmp_bytes is not None:
        args += ["--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--remount-ro", "/dev", "--chdir", chdir or destination, "--remount-ro", "/",
             "--info-fd", str(info_fd), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--", *command]
