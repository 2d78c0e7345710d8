"""Checks of the limits a caller passes, the bounded reading of a run's output, and the one warning given
where cgroups cannot enforce the whole-run caps."""

from __future__ import annotations

import threading
import warnings

from iquest_core.sandbox import cgroups

OUTPUT_LIMIT_BYTES = 16 << 10  # of stdout and of stderr kept in a verdict or command result
MAX_TIMEOUT_S = 3600
_warned = threading.Event()


def check_limits(*, timeout_s, memory_mb, tasks_max=None) -> None:
    """ValueError naming the first limit that is not a number in its range."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s: expected seconds in (0, {MAX_TIMEOUT_S}], got {timeout_s!r}")
    if isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 64:
        raise ValueError(f"memory_mb: expected an int >= 64 (the interpreter alone needs ~30 MiB), got {memory_mb!r}")
    if tasks_max is not None and (isinstance(tasks_max, bool) or not isinstance(tasks_max, int) or tasks_max < 8):
        raise ValueError(f"tasks_max: expected an int >= 8, got {tasks_max!r}")


def read_bounded(file) -> str:
    """The first OUTPUT_LIMIT_BYTES of a binary file, decoded as UTF-8 with replacement characters."""
    file.seek(0)
    return file.read(OUTPUT_LIMIT_BYTES).decode("utf-8", errors="replace")


def warn_without_cgroups() -> None:
    """Once per process: which whole-run caps are not enforced, and why."""
    if _warned.is_set():
        return
    _warned.set()
    warnings.warn("iquest_core.sandbox: no cgroup can be made for sandboxed runs "
                  f"({cgroups.why_not()}); NOT enforced: the whole-run memory cap (memory_mb over all processes, "
                  "shared memory, memfds and tmpfs files) and the whole-run task cap (processes + threads). "
                  "Still enforced: the wall clock, namespaces, size-capped tmpfs mounts; run_tests adds "
                  "per-process RLIMIT_AS and RLIMIT_NPROC.", RuntimeWarning, stacklevel=3)
