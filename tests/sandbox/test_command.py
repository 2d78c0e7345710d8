"""run_command: the contract the SWE-RL environments rely on (what is visible and writable inside, the
whole-run caps, the wall clock, nothing left behind), and bad input."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

from iquest_core.sandbox import cgroups, run_command
from iquest_core.sandbox.command import WORKSPACE
from iquest_core.sandbox.interpreter import sandbox_python

needs_cgroups = pytest.mark.skipif(cgroups.why_not() is not None, reason="no cgroup permission here")


def _python_binds() -> dict[str, str]:
    return dict(sandbox_python().binds)


def _python(code: str, workdir: Path, **kwargs):
    return run_command([sandbox_python().python, "-I", "-S", "-c", code], workdir=workdir, ro_binds=_python_binds(),
                       **kwargs)


def test_workdir_is_writable_ro_binds_readable_and_nothing_else_writable(tmp_path):
    (tmp_path / "given.txt").write_text("from the host")
    data = tmp_path.parent / f"data-{secrets.token_hex(4)}"
    data.mkdir()
    (data / "ro.txt").write_text("read me")
    script = ("cat given.txt; echo; cat /data/ro.txt; echo; echo made > made.txt; pwd; "
              "for f in /data/x /usr/x /x /dev/x; do (echo no > $f) 2>/dev/null && echo WROTE $f; done; "
              "echo tmp > /tmp/t && cat /tmp/t")
    result = run_command(["sh", "-c", script], workdir=tmp_path, ro_binds={str(data): "/data"}, timeout_s=10)
    assert result.returncode == 0, result
    assert result.stdout.split("\n") == ["from the host", "read me", WORKSPACE, "tmp", ""]
    assert (tmp_path / "made.txt").read_text() == "made\n"
    assert sorted(p.name for p in data.iterdir()) == ["ro.txt"]


def test_environment_is_exactly_the_given_one_and_cwd_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("IQUEST_HOST_SECRET", "x")
    (tmp_path / "sub").mkdir()
    result = run_command(["/usr/bin/env"], workdir=tmp_path, env={"A": "1"}, timeout_s=10)
    assert result.stdout == "A=1\n"
    assert run_command(["pwd"], workdir=tmp_path, cwd=f"{WORKSPACE}/sub", timeout_s=10).stdout == f"{WORKSPACE}/sub\n"


def test_no_network_but_loopback(tmp_path):
    result = _python("import socket\nprint(sorted(n for _, n in socket.if_nameindex()))", tmp_path, timeout_s=10)
    assert result.stdout.strip() == "['lo']", result


def test_the_package_interpreter_runs_inside_even_when_the_sandbox_user_cannot_read_it(tmp_path):
    result = _python("import sys; print(sys.version)", tmp_path, timeout_s=10)
    assert result.returncode == 0 and result.stdout.strip() == sys.version, result


def test_exit_status_and_signals_are_reported(tmp_path):
    assert run_command(["sh", "-c", "exit 7"], workdir=tmp_path, timeout_s=10).returncode == 7
    assert run_command(["sh", "-c", "kill -SEGV $$"], workdir=tmp_path, timeout_s=10).returncode == 128 + 11


def test_timeout_kills_the_command_and_its_daemons(tmp_path):
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    result = run_command(["sh", "-c", f"setsid sleep {marker} & sleep 60"], workdir=tmp_path, timeout_s=1.0)
    assert result.timed_out and not result.memory_exceeded
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == f"sleep {marker}"]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@needs_cgroups
def test_memory_cap_holds_for_all_processes_together(tmp_path):
    """Three forked children of 60 MiB each: each is under the 128 MiB cap, together they are not."""
    hog = ("import os, time\n"
           "for _ in range(3):\n"
           "    if os.fork() == 0:\n"
           "        block = bytearray(60 << 20)\n"
           "        time.sleep(30)\n"
           "time.sleep(5)\n")
    result = _python(hog, tmp_path, timeout_s=10, memory_mb=128)
    assert result.memory_exceeded and not result.timed_out, result
    control = _python(hog.replace("range(3)", "range(1)").replace("time.sleep(30)", "os._exit(0)")
                      .replace("time.sleep(5)", "os.wait()"), tmp_path, timeout_s=10, memory_mb=128)
    assert control.returncode == 0 and not control.memory_exceeded, control


@needs_cgroups
def test_tmpfs_files_count_against_the_memory_cap(tmp_path):
    """80 MiB in a /tmp file plus a 80 MiB allocation exceed 128 MiB; the allocation alone does not."""
    allocate = "block = bytearray(80 << 20); print('allocated')"
    result = _python(f"open('/tmp/big', 'wb').write(bytes(80 << 20))\n{allocate}", tmp_path, timeout_s=10,
                     memory_mb=128)
    assert result.memory_exceeded and "allocated" not in result.stdout, result
    control = _python(allocate, tmp_path, timeout_s=10, memory_mb=128)
    assert control.stdout == "allocated\n" and not control.memory_exceeded, control


@needs_cgroups
def test_task_cap_allows_a_64_thread_pool_and_bounds_forks(tmp_path):
    pool = ("from concurrent.futures import ThreadPoolExecutor\nimport threading, time\n"
            "barrier = threading.Barrier(64)\n"
            "with ThreadPoolExecutor(64) as ex:\n"
            "    print(sum(ex.map(lambda i: barrier.wait() * 0 + i, range(64))))\n")
    assert _python(pool, tmp_path, timeout_s=20, memory_mb=512, tasks_max=100).stdout.strip() == str(sum(range(64)))
    forks = ("import os, time\nn = 0\n"
             "while n < 500:\n"
             "    try:\n"
             "        if os.fork() == 0:\n"
             "            time.sleep(30)\n"
             "            os._exit(0)\n"
             "    except OSError:\n"
             "        break\n"
             "    n += 1\n"
             "print(n)\n")
    result = _python(forks, tmp_path, timeout_s=20, tasks_max=32)
    assert 0 < int(result.stdout) < 32, result


@pytest.mark.parametrize("kwargs, name", [
    (dict(argv="ls"), "argv"), (dict(argv=[]), "argv"), (dict(argv=["ls", 1]), "argv"),
    (dict(workdir="/nonexistent-dir"), "workdir"), (dict(ro_binds={"/nonexistent": "/x"}), "ro_binds"),
    (dict(ro_binds={"/usr": "relative"}), "ro_binds"), (dict(ro_binds={"/usr": "/tmp"}), "ro_binds"),
    (dict(env={"A": 1}), "env"), (dict(cwd="rel"), "cwd"), (dict(timeout_s=-1), "timeout_s"),
    (dict(memory_mb=0), "memory_mb"), (dict(tasks_max=0), "tasks_max"), (dict(network="yes"), "network")])
def test_bad_arguments_raise_value_error_naming_them(tmp_path, kwargs, name):
    args = {"argv": ["true"], "workdir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=name):
        run_command(args.pop("argv"), **args)
    assert os.listdir(tmp_path) == []
