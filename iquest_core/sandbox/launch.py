"""Starting one sandboxed process and making sure it is gone: `Launched.start`, `wait`, `kill`, `reap`.

Before bwrap runs, a small trusted shell prelude (as the caller, root or not) writes its own pid into the
run cgroup's procs files, so the sandbox and everything it starts are in the run's cgroup from their
first instruction; run as root it then stages the bind sources the sandbox user cannot reach (in a private
mount namespace from unshare(1), each source is bound onto an empty directory isolate.STAGE_DIR/<i> that
exists on the host once and stays empty there) and drops
to SANDBOX_UID with setpriv (no capabilities, no new privileges) before exec'ing bwrap. Without a cgroup
and without staging, bwrap is exec'ed directly (as SANDBOX_UID through setpriv when root).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from iquest_core.sandbox.isolate import SANDBOX_UID, STAGE_DIR, host_tools, reachable_by_sandbox_user

_PRELUDE = r"""
n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done
n=$1; shift
while [ "$n" -gt 0 ]; do mount --bind "$1" "$2" || exit 125; shift 2; n=$((n - 1)); done
exec "$@"
"""


def stage_binds(binds: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """(binds as bwrap must name their sources, host sources to stage in the prelude's order): a source
    the sandbox user cannot reach is named by its staged path STAGE_DIR/<i>."""
    staged, named = [], []
    for source, destination in binds:
        if reachable_by_sandbox_user(source):
            named.append((source, destination))
        else:
            named.append((f"{STAGE_DIR}/{len(staged)}", destination))
            staged.append(source)
    return named, staged


def launcher_argv(bwrap: Sequence[str], *, procs_files: Sequence[str], staged: Sequence[str]) -> list[str]:
    """The full argv: the prelude (when a cgroup is joined or a bind staged), setpriv (when root), bwrap."""
    tools = host_tools()
    argv = list(bwrap)
    if os.geteuid() == 0:
        argv = [tools.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                "--no-new-privs", *argv]
    if not procs_files and not staged:
        return argv
    prelude = ["/bin/sh", "-c", _PRELUDE, "sh", str(len(procs_files)), *procs_files, str(len(staged))]
    for i, source in enumerate(staged):
        os.makedirs(f"{STAGE_DIR}/{i}", mode=0o755, exist_ok=True)
        prelude += [source, f"{STAGE_DIR}/{i}"]
    if staged:
        prelude = [tools.unshare, "--mount", "--propagation", "private", *prelude]
    return prelude + argv


@dataclass
class Launched:
    """One started sandbox: bwrap's Popen and, once `attach`ed, a pidfd of its PID namespace's init (None
    if bwrap failed before making it, or once reaped); `started`: whether bwrap made the namespace."""

    proc: subprocess.Popen
    info_read: int
    init_pidfd: int | None = None
    started: bool = False

    @classmethod
    def spawn(cls, build_argv, *, stdin, stdout, stderr, pass_fds: Sequence[int] = ()) -> Launched:
        """Start build_argv(info_fd) (the launcher argv, given the fd bwrap writes its info to) with an empty
        environment; `attach` must follow."""
        info_read, info_write = os.pipe()
        try:
            proc = subprocess.Popen(build_argv(info_write), stdin=stdin, stdout=stdout, stderr=stderr,
                                    pass_fds=(info_write, *pass_fds), env={})
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)
        return cls(proc, info_read)

    @classmethod
    def start(cls, build_argv, **kwargs) -> Launched:
        """spawn, then attach."""
        launched = cls.spawn(build_argv, **kwargs)
        launched.attach()
        return launched

    def attach(self) -> None:
        """Wait (up to 10 s) for bwrap's info and open the init's pidfd."""
        try:
            self.init_pidfd = _open_init(self.info_read, 10.0)
            self.started = self.init_pidfd is not None
        finally:
            os.close(self.info_read)
            self.info_read = -1

    def wait(self, deadline: float) -> bool:
        """Wait for bwrap to exit until the monotonic deadline; whether it did. (A pidfd wakes this at the
        exit itself; Popen.wait(timeout) would poll with sleeps of up to 50 ms.)"""
        if self.proc.poll() is not None:
            return True
        try:
            pidfd = os.pidfd_open(self.proc.pid)
        except ProcessLookupError:  # exited, not yet reaped
            self.proc.wait()
            return True
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                return False
        finally:
            os.close(pidfd)
        self.proc.wait()
        return True

    def kill(self) -> None:
        """SIGKILL the namespace's init (the kernel then kills everything in it), then bwrap."""
        if self.init_pidfd is not None:
            try:
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()

    def reap(self) -> None:
        """Wait until bwrap and every process of the namespace are gone, then close the pidfds. The kernel
        lets init exit only after every other process of its PID namespace is gone; bwrap itself may exit
        before (it reports its child's status as soon as that child ends)."""
        self.proc.wait()
        if self.info_read >= 0:  # never attached
            os.close(self.info_read)
            self.info_read = -1
        if self.init_pidfd is None:
            return
        poller = select.poll()
        poller.register(self.init_pidfd, select.POLLIN)
        if not poller.poll(5000):
            signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
            poller.poll()
        os.close(self.init_pidfd)
        self.init_pidfd = None


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
