"""One cgroup per sandboxed run: a memory cap and a task cap over everything the run creates.

`RunCgroup.create(memory_mb, tasks_max)` makes the run's cgroup below the caller's own (so limits above
it still hold): cgroup v2 when the unified hierarchy is mounted with the memory and pids controllers
delegated to the caller, else cgroup v1 memory + pids. The memory cap counts all the run's processes,
their anonymous memory, shared memory, memfds and tmpfs files (the kernel charges shmem pages to the
cgroup of the process that first touches them); swap is capped to the same total. Processes join it by
writing their pid into `procs_files` before anything untrusted runs (launch.py does this), and every
process they start inherits it. `oom_kills()` counts the kernel's OOM kills inside it; `remove()` kills
what is left, waits until it is empty and removes it.

`RunCgroup.create` returns None where cgroups cannot be used (no permission, not mounted); `why_not()`
then says why, for the caller's one warning.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_REMOVE_TIMEOUT_S = 5.0


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup / cgroup2 mount."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            found.append((fields[1], fields[2], set(fields[3].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller ('' for the unified hierarchy) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_parent() -> Path:
    """This process's cgroup v2 directory where memory and pids can be enabled for children."""
    paths = _own_paths()
    for point, kind, _ in _mounts():
        if kind == "cgroup2" and "" in paths:
            parent = Path(point + paths[""])
            enabled = set((parent / "cgroup.subtree_control").read_text().split())
            if not {"memory", "pids"} <= enabled:
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            return parent
    raise OSError("no cgroup2 mount")


def _v1_parents() -> dict[str, Path]:
    """controller -> this process's cgroup v1 directory, for memory and pids."""
    paths, parents = _own_paths(), {}
    for point, kind, options in _mounts():
        for controller in ("memory", "pids"):
            if kind == "cgroup" and controller in options and controller in paths:
                parents[controller] = Path(point + paths[controller])
    if set(parents) != {"memory", "pids"}:
        raise OSError(f"cgroup v1 controllers mounted: {sorted(parents) or 'none'} (need memory and pids)")
    return parents


@functools.cache
def _layout() -> tuple[str, dict[str, Path]] | str:
    """("v2", {"": parent}) or ("v1", {"memory": ..., "pids": ...}) after a trial cgroup was made and
    removed in each parent; else the reason (a string) why neither can be used."""
    reasons = []
    for version, find in (("v2", lambda: {"": _v2_parent()}), ("v1", _v1_parents)):
        try:
            parents = find()
            for parent in parents.values():
                trial = parent / f"iquest-sandbox-probe-{os.getpid()}-{secrets.token_hex(4)}"
                trial.mkdir()
                trial.rmdir()
            return version, parents
        except OSError as error:
            reasons.append(f"cgroup {version}: {error}")
    return "; ".join(reasons)


def why_not() -> str | None:
    """Why no run cgroup can be made here, or None when it can."""
    layout = _layout()
    return layout if isinstance(layout, str) else None


@dataclass
class RunCgroup:
    version: str
    dirs: dict[str, Path]   # controller ('' for v2) -> the run's cgroup directory

    @classmethod
    def create(cls, memory_mb: int, tasks_max: int) -> RunCgroup | None:
        layout = _layout()
        if isinstance(layout, str):
            return None
        version, parents = layout
        name = f"iquest-sandbox-{os.getpid()}-{secrets.token_hex(6)}"
        group = cls(version, {})
        try:
            for controller, parent in parents.items():
                (parent / name).mkdir()
                group.dirs[controller] = parent / name
            group._set_limits(memory_mb << 20, tasks_max)
        except BaseException:
            group.remove()
            raise
        return group

    def _set_limits(self, memory_bytes: int, tasks_max: int) -> None:
        if self.version == "v2":
            d = self.dirs[""]
            (d / "memory.max").write_text(str(memory_bytes))
            if (d / "memory.swap.max").exists():
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(tasks_max))
            return
        memory = self.dirs["memory"]
        (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no way around the cap by swapping
            (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        (self.dirs["pids"] / "pids.max").write_text(str(tasks_max))

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid into to join the run's cgroup (one per hierarchy)."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_kills(self) -> int:
        """Processes the kernel killed in this cgroup for hitting the memory cap."""
        if self.version == "v2":
            events = self.dirs[""] / "memory.events"
        else:
            events = self.dirs["memory"] / "memory.oom_control"
        for line in events.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for d in self.dirs.values():
            try:
                pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                pass
        return pids

    def _kill(self, pid: int) -> None:
        """SIGKILL pid if it is still in this cgroup (through a pidfd: a reused pid is never hit)."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            if self.dirs[next(iter(self.dirs))].name in Path(f"/proc/{pid}/cgroup").read_text():
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except (ProcessLookupError, FileNotFoundError):
            pass
        finally:
            os.close(pidfd)

    def remove(self) -> None:
        """SIGKILL every process still inside, wait until none is left, remove the directories."""
        kill_file = self.dirs.get("", Path("/nonexistent")) / "cgroup.kill"
        deadline = time.monotonic() + _REMOVE_TIMEOUT_S
        while pids := self._pids():
            if kill_file.exists():
                kill_file.write_text("1")
            else:
                for pid in pids:
                    self._kill(pid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox cgroup {list(self.dirs.values())} still has processes {sorted(pids)}")
            time.sleep(0.002)
        for d in self.dirs.values():
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: the last exits are still being accounted
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.002)
