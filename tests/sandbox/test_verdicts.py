"""What each kind of program gets as a verdict, bad input included, and the pool."""

from __future__ import annotations

import pytest

from iquest_core.sandbox import STATUSES, run_many, run_tests
from iquest_core.sandbox.limits import OUTPUT_LIMIT_BYTES


def test_passing_program_sees_its_output():
    verdict = run_tests("def add(a, b):\n    return a + b\nprint('hello')", "assert add(2, 3) == 5")
    assert verdict.status == "passed" and verdict.passed
    assert verdict.stdout == "hello\n" and verdict.stderr == ""
    assert verdict.duration_s > 0


def test_tests_call_the_program_functions_and_see_copies_of_its_values():
    program = "state = []\ndef candidate(x):\n    state.append(x)\n    return x * 2, len(state)\n"
    tests = ("def check(f):\n    assert f(4) == (8, 1)\n    assert f(5) == (10, 2)  # state lives on in the program\n"
             "    assert state == []  # a copy taken when the program finished loading\n"
             "check(candidate)\n")
    assert run_tests(program, tests).passed
    assert run_tests(program, "assert candidate(1) == (3, 1)").status == "failed"


@pytest.mark.parametrize("program", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit",
                                     "exit()", "import sys\nsys.exit(2)"])
def test_leaving_before_the_tests_ran_is_not_a_pass(program):
    assert run_tests(program, "assert False").status == "failed"


def test_exit_from_atexit_hook_or_lingering_thread_does_not_change_the_verdict():
    program = ("import atexit, os, threading, time\n"
               "atexit.register(lambda: os._exit(0))\n"
               "threading.Thread(target=time.sleep, args=(60,)).start()\n")
    assert run_tests(program, "assert 1 + 1 == 3", timeout_s=5.0).status == "failed"
    assert run_tests(program, "", timeout_s=5.0).status == "passed"


@pytest.mark.parametrize("program", ["def f(:\n    pass", "return 1", "\x00", "print('a'", "    indented = 1"])
def test_invalid_code_is_an_error(program):
    verdict = run_tests(program, "")
    assert verdict.status == "error", verdict
    assert "Error" in verdict.stderr


def test_invalid_tests_are_an_error():
    assert run_tests("x = 1", "assert x ==").status == "error"


@pytest.mark.parametrize("crash", ["import ctypes\nctypes.string_at(0)", "import os\nos.abort()",
                                   "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"])
def test_interpreter_crash_is_an_error(crash):
    verdict = run_tests(crash, "")
    assert verdict.status == "error", verdict
    assert "killed by signal" in verdict.stderr


def test_binary_garbage_on_stdout_is_decoded_and_bounded():
    program = "import os, sys\nsys.stdout.buffer.write(os.urandom(1 << 20))\nsys.stdout.buffer.write(b'\\xff\\xfe\\x00')"
    verdict = run_tests(program, "")
    assert verdict.passed, verdict.status
    assert len(verdict.stdout.encode("utf-8", errors="replace")) <= 3 * OUTPUT_LIMIT_BYTES
    assert "\ufffd" in verdict.stdout


def test_endless_output_hits_the_file_size_limit():
    verdict = run_tests("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", "", timeout_s=10.0)
    assert verdict.status == "failed" and "File too large" in verdict.stderr  # Python ignores SIGXFSZ: EFBIG
    assert len(verdict.stdout) == OUTPUT_LIMIT_BYTES


def test_non_utf8_source_does_not_break_the_runner():
    assert run_tests("s = '\udcff'", "").status in ("error", "failed", "passed")
    assert run_tests("s = 'caf\u00e9 \u2603'\nprint(s)", "").stdout == "caf\u00e9 \u2603\n"


def test_each_run_gets_a_fresh_working_directory():
    first = run_tests("open('left.txt', 'w').write('x')", "")
    second = run_tests("import os\nprint(os.listdir('.'))", "")
    assert first.passed and second.stdout.strip() == "[]"


def test_pool_returns_every_verdict_in_order_and_never_hangs():
    jobs = [("x = 1", "assert x == 1"), ("while True:\n    pass", ""), ("def f(:", ""),
            ("import ctypes\nctypes.string_at(0)", ""), ("import os, sys\nsys.stdout.buffer.write(os.urandom(4096))", ""),
            ("x = bytearray(1 << 40)", ""), ("x = 1", "assert x == 2"), ("import os\nos._exit(0)", "")]
    verdicts = run_many(jobs, workers=3, timeout_s=1.5, memory_mb=256)
    assert [v.status for v in verdicts] == ["passed", "timeout", "error", "error", "passed", "memory", "failed",
                                            "failed"]
    assert all(v.status in STATUSES for v in verdicts)
    assert run_many([], workers=2) == []


@pytest.mark.parametrize("kwargs, name", [(dict(timeout_s=0), "timeout_s"), (dict(timeout_s=-1), "timeout_s"),
                                          (dict(timeout_s="1"), "timeout_s"), (dict(memory_mb=-5), "memory_mb"),
                                          (dict(language="Python"), "language"),
                                          (dict(memory_mb=8), "memory_mb"), (dict(memory_mb=1.5), "memory_mb"),
                                          (dict(language="java"), "language")])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        run_tests("x = 1", "", **kwargs)


def test_bad_program_type_and_pool_size():
    with pytest.raises(ValueError, match="program"):
        run_tests(b"x = 1", "")
    with pytest.raises(ValueError, match="tests"):
        run_tests("x = 1", None)
    with pytest.raises(ValueError, match="workers"):
        run_many([("x = 1", "")], workers=0)


@pytest.mark.parametrize("job", [("x = 1",), ("x = 1", "", ""), "x = 1", ("x = 1", None), (b"x = 1", "")])
def test_run_many_checks_every_job_before_running_any(job):
    with pytest.raises(ValueError, match=r"^jobs: expected \(program, tests\) pairs of str, got .* at index 1$"):
        run_many([("x = 1", "assert x == 1"), job])
