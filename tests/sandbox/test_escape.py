"""Programs that try to escape the sandbox or to outlive their verdict: each gets a verdict within its time
limit, and the host is as it was afterwards (no process left, no file changed, nothing learned)."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from iquest_core.sandbox import run_tests
from iquest_core.sandbox.execute import INSIDE, TASKS_MAX
from iquest_core.sandbox.interpreter import sandbox_python

SLACK_S = 6.0  # a bound against hangs (start-up and tear-down of two sandboxes at load ~30), not a speed claim


def _processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _runner_processes() -> list[int]:
    """Processes running the sandbox's program or test side (INSIDE is on their command line)."""
    return _processes_with(INSIDE)


def test_infinite_loop_times_out_and_leaves_nothing():
    verdict = run_tests("while True:\n    pass\n", "", timeout_s=1.0)
    assert verdict.status == "timeout" and not verdict.passed
    assert 1.0 <= verdict.duration_s < 1.0 + SLACK_S
    assert _runner_processes() == []


def test_infinite_loop_in_tests_and_sleep_time_out():
    assert run_tests("import time", "time.sleep(60)", timeout_s=0.5).status == "timeout"


def test_memory_bomb_is_stopped_by_the_address_space_limit():
    bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n"
    verdict = run_tests(bomb, "", timeout_s=10.0, memory_mb=128)
    assert verdict.status == "memory", verdict
    assert verdict.duration_s < 10.0


def test_one_huge_allocation_is_refused():
    assert run_tests("x = bytearray(1 << 40)", "", memory_mb=256).status == "memory"


def test_fork_bomb_is_bounded_and_fully_killed():
    bomb = ("import os\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n")
    verdict = run_tests(bomb, "", timeout_s=2.0)
    assert verdict.status in ("timeout", "failed"), verdict
    assert verdict.duration_s < 2.0 + SLACK_S
    assert _runner_processes() == []


def test_process_count_is_limited():
    program = ("import os, time\n"
               "children = 0\n"
               "for _ in range(400):\n"
               "    try:\n"
               "        pid = os.fork()\n"
               "    except OSError:\n"
               "        break\n"
               "    if pid == 0:\n"
               "        time.sleep(30)\n"
               "        os._exit(0)\n"
               "    children += 1\n"
               "print(children)\n")
    verdict = run_tests(program, "", timeout_s=5.0)
    assert verdict.passed, verdict
    assert 64 < int(verdict.stdout) < TASKS_MAX  # the whole run's task cap, not RLIMIT_NPROC's 32
    assert _runner_processes() == []


def test_double_forked_daemon_does_not_outlive_the_verdict():
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"  # the daemon's unique sleep argument
    program = ("import os, time\n"
               "read_end, write_end = os.pipe()\n"
               "if os.fork() == 0:\n"
               "    os.setsid()\n"
               "    if os.fork() == 0:\n"
               "        os.write(write_end, b'up')\n"
               f"        os.execv('/usr/bin/sleep', ['sleep', '{marker}'])\n"
               "    os._exit(0)\n"
               "assert os.read(read_end, 2) == b'up'\n"
               "time.sleep(0.2)\n")
    verdict = run_tests(program, "", timeout_s=5.0)
    assert verdict.passed, verdict
    assert _processes_with(f"sleep {marker}") == []
    assert _runner_processes() == []


def test_daemon_outliving_a_timeout_is_killed_too():
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    program = ("import os, time\n"
               "if os.fork() == 0:\n"
               "    os.setsid()\n"
               "    if os.fork() == 0:\n"
               f"        os.execv('/usr/bin/sleep', ['sleep', '{marker}'])\n"
               "    os._exit(0)\n"
               "time.sleep(60)\n")
    verdict = run_tests(program, "", timeout_s=1.0)
    assert verdict.status == "timeout"
    assert _processes_with(f"sleep {marker}") == []


def test_tcp_connection_to_host_loopback_fails():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n"
        verdict = run_tests(program, "", timeout_s=5.0)
        assert verdict.status == "failed"
        assert "ConnectionRefusedError" in verdict.stderr or "OSError" in verdict.stderr, verdict.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_only_loopback_exists_inside():
    verdict = run_tests("import socket\nprint(sorted(name for _, name in socket.if_nameindex()))", "")
    assert verdict.passed and verdict.stdout.strip() == "['lo']"


def test_planted_host_file_cannot_be_read(tmp_path):
    secret = secrets.token_hex(8)
    planted = tmp_path / "planted.txt"
    planted.write_text(secret)
    planted.chmod(0o644)
    for path in (str(planted), f"/proc/1/root{planted}", "/etc/passwd", "/root/.bashrc"):
        verdict = run_tests(f"print(open({path!r}).read())", "", timeout_s=5.0)
        assert verdict.status == "failed", (path, verdict)
        assert secret not in verdict.stdout + verdict.stderr
    listing = run_tests("import os\nprint(sorted(os.listdir('/')))", "")
    assert listing.passed
    interpreter_roots = {Path(prefix).parts[1] for prefix in sandbox_python().prefixes}  # e.g. root for pyenv
    assert set(eval(listing.stdout)) <= {"bin", "dev", "lib", "lib32", "lib64", "proc", "sandbox", "sbin", "usr",
                                         "iquest-inside", *interpreter_roots}


def test_writing_outside_the_working_directory_fails(tmp_path):
    tmp_path.chmod(0o777)
    target = tmp_path / "written.txt"
    for path in (str(target), "/escape.txt", "/usr/escape.txt", "/proc/1/root/escape.txt"):
        verdict = run_tests(f"open({path!r}, 'w').write('x')", "", timeout_s=5.0)
        assert verdict.status == "failed", (path, verdict)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    shm_name = f"iquest-{secrets.token_hex(6)}"  # /dev/shm inside is the sandbox's own tmpfs
    assert run_tests(f"open('/dev/shm/{shm_name}', 'w').write('x')", "").passed
    assert not Path("/dev/shm", shm_name).exists()
    inside = run_tests("import os\nassert os.listdir('.') == []\nopen('ok.txt', 'w').write('x')\n"
                       "print(os.getcwd(), os.listdir('.'))", "")
    assert inside.passed and inside.stdout.strip() == "/sandbox ['ok.txt']"


@pytest.mark.parametrize("directory", [".", "/dev/shm"])
def test_writable_directories_are_size_capped(directory):
    program = (f"import os\nfor i in range(200):\n"
               f"    with open(os.path.join({directory!r}, f'f{{i}}'), 'wb') as f:\n"
               "        f.write(bytes(1 << 20))\n")
    verdict = run_tests(program, "", timeout_s=10.0)
    assert verdict.status == "failed" and "No space left on device" in verdict.stderr, verdict


def test_host_environment_is_invisible(monkeypatch):
    secret = secrets.token_hex(8)
    monkeypatch.setenv("IQUEST_SANDBOX_SECRET", secret)
    program = ("import os\n"
               "print(dict(os.environ))\n"
               "for pid in os.listdir('/proc'):\n"
               "    if pid.isdigit():\n"
               "        try:\n"
               "            print(open(f'/proc/{pid}/environ', 'rb').read())\n"
               "        except OSError:\n"
               "            pass\n")
    verdict = run_tests(program, "assert 'IQUEST_SANDBOX_SECRET' not in os.environ", timeout_s=5.0)
    assert verdict.passed, verdict
    assert secret not in verdict.stdout
    assert "IQUEST_SANDBOX_SECRET" not in verdict.stdout


def test_host_processes_are_invisible():
    verdict = run_tests("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))", "")
    assert verdict.passed
    assert eval(verdict.stdout) == [1, 2]  # bubblewrap's init and the runner


def test_verdict_returns_promptly_after_a_timeout():
    start = time.monotonic()
    run_tests("import os\nfor _ in range(8):\n    os.fork()\nwhile True:\n    pass\n", "", timeout_s=1.0)
    assert time.monotonic() - start < 1.0 + SLACK_S
    assert _runner_processes() == []


def test_the_namespace_init_is_found_and_awaited(monkeypatch):
    from iquest_core.sandbox import launch
    found, open_init = [], launch._open_init

    def spy(fd, timeout_s):
        found.append(open_init(fd, timeout_s))
        return found[-1]

    monkeypatch.setattr(launch, "_open_init", spy)
    run_tests("x = 1", "")
    run_tests("while True:\n    pass\n", "", timeout_s=0.5)
    assert len(found) == 4 and all(pidfd is not None for pidfd in found)  # a program and a test sandbox each
