"""The adversarial suite: every attack in attacks.py (a program that does not solve the task) gets a verdict
other than "passed"; the controls show the task can be passed and failed, and that the attacks marked
FORGED_ON_THE_OLD_PATH did get "passed" on the replaced single-process path. Then the whole-run caps:
forked children, /dev and tmp files, memfds, and a 64-thread pool that must still pass. All runs of a
kind go through run_many / a thread pool at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.single_process import single_process_passed
from iquest_core.rl import tasks as rl_tasks
from iquest_core.sandbox import cgroups, run_many
from tests.sandbox.attacks import ATTACKS, FORGED_ON_THE_OLD_PATH, SOLUTION, TESTS, TESTS_WITH_HELPERS, WRONG

MEMORY_MB = 256
needs_cgroups = pytest.mark.skipif(cgroups.why_not() is not None, reason="no cgroup permission here")


@pytest.fixture(scope="module")
def verdicts():
    names = list(ATTACKS)
    jobs = [ATTACKS[name][1:] for name in names]
    jobs += [(SOLUTION, TESTS), (SOLUTION, TESTS_WITH_HELPERS), (WRONG, TESTS), (WRONG, TESTS_WITH_HELPERS)]
    results = run_many(jobs, workers=2, timeout_s=5.0, memory_mb=MEMORY_MB)
    return dict(zip(names + ["solution", "solution, helpers", "wrong", "wrong, helpers"], results))


@pytest.fixture(scope="module")
def old_path_passed():
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(FORGED_ON_THE_OLD_PATH, pool.map(
            lambda name: single_process_passed(*ATTACKS[name][1:], timeout_s=5.0, memory_mb=MEMORY_MB),
            FORGED_ON_THE_OLD_PATH)))


def test_suite_covers_every_attack_class():
    classes = {kind for kind, _, _ in ATTACKS.values()}
    assert len(ATTACKS) >= 25 and classes == {"early exit", "trusted state", "always equal", "lying serialization",
                                              "monkey-patching", "names", "signals", "fake output", "racing"}


def test_the_task_can_be_passed_and_failed(verdicts):
    assert verdicts["solution"].passed and verdicts["solution, helpers"].passed
    assert verdicts["wrong"].status == verdicts["wrong, helpers"].status == "failed"


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_does_not_pass(verdicts, name):
    verdict = verdicts[name]
    assert verdict.status != "passed", (ATTACKS[name][0], verdict)


@pytest.mark.parametrize("name", FORGED_ON_THE_OLD_PATH)
def test_attack_forged_a_pass_on_the_old_single_process_path(old_path_passed, name):
    assert old_path_passed[name], f"{name!r} no longer fools the old path: the control is stale"


def test_values_that_are_not_plain_data_are_refused_with_a_clear_message(verdicts):
    assert "is not plain data" in verdicts["int subclass equal to everything"].stderr
    assert "subclasses are refused" in verdicts["__reduce__ rebuilds the right value"].stderr


# The caps: a correct program that holds too much memory in ways per-process limits do not see.
_CHILDREN = SOLUTION + ("import os, select, time\nready, held = os.pipe()\nfor _ in range(4):\n"
                        "    if os.fork() == 0:\n        block = bytearray(100 << 20)\n"
                        "        for i in range(0, len(block), 4096):\n            block[i] = 1\n"
                        "        os.write(held, b'x')\n        time.sleep(30)\n"
                        "got = 0  # wait until the children hold their memory (or 2 s)\n"
                        "while got < 4 and select.select([ready], [], [], 2)[0]:\n    got += len(os.read(ready, 4))\n")
_MEMFD = SOLUTION + ("import os\nchunk = bytes(1 << 20)\nfds = [os.memfd_create('hoard') for _ in range(22)]\n"
                     "for fd in fds:  # 15 MiB each: under the per-file size limit\n"
                     "    for _ in range(15):\n        os.write(fd, chunk)\n")
_FILES = SOLUTION + ("import os\nwritten = {}\nchunk = bytes(1 << 20)\n"
                     "for folder in ('/dev', '/dev/shm', '.', '/tmp', '/'):\n"
                     "    written[folder] = 0\n    try:\n"
                     "        with open(os.path.join(folder, 'hoard'), 'wb') as f:\n"
                     "            for _ in range(400):\n                f.write(chunk)\n                f.flush()\n"
                     "                written[folder] += 1\n    except OSError:\n        pass\n"
                     "print(written)\n")
_THREAD_POOL = ("from concurrent.futures import ThreadPoolExecutor\nimport threading\n"
                "barrier = threading.Barrier(64)\n"
                "def add(a, b):\n    with ThreadPoolExecutor(64) as pool:\n"
                "        return sum(pool.map(lambda x: barrier.wait() * 0 + x, [a, b] + [0] * 62))\n")


@pytest.fixture(scope="module")
def caps():
    jobs = [(_CHILDREN, TESTS), (_MEMFD, TESTS), (_FILES, TESTS), (_THREAD_POOL, TESTS)]
    new = run_many(jobs, workers=2, timeout_s=10.0, memory_mb=MEMORY_MB)
    with ThreadPoolExecutor(2) as pool:
        old = list(pool.map(lambda job: single_process_passed(*job, timeout_s=10.0, memory_mb=MEMORY_MB), jobs))
    return dict(zip(["children", "memfd", "files", "thread pool"], zip(new, old)))


@needs_cgroups
@pytest.mark.parametrize("name", ["children", "memfd"])
def test_memory_held_outside_the_process_hits_the_whole_run_cap(caps, name):
    verdict, old_passed = caps[name]
    assert verdict.status == "memory", verdict
    assert old_passed, "control: the old per-process limit let this through"


def test_only_the_working_directory_and_dev_shm_are_writable_and_capped(caps):
    verdict, old_passed = caps["files"]
    assert verdict.passed, verdict
    written = eval(verdict.stdout)  # MiB written per folder before the first error
    assert written["/dev"] == written["/tmp"] == written["/"] == 0
    assert written["/dev/shm"] <= 16 and written["."] <= 64, written
    assert old_passed, "control: the old path's /dev took 400 MiB"


@needs_cgroups
def test_a_64_thread_pool_passes_under_the_task_cap(caps):
    verdict, old_passed = caps["thread pool"]
    assert verdict.passed, verdict
    assert not old_passed, "control: RLIMIT_NPROC (which counts threads) broke it on the old path"


def test_rl_reward_of_a_forging_completion_is_zero():
    prompt, tests = "# add 3\ndef f(x):\n    return ", ("assert f(1) == 4", "assert f(2) == 5")
    thief = "x\n" + ATTACKS["thread steals the token while the tests run"][1]
    printer = "x\nfor n in range(10):\n    print('0' * 32, n)\n"
    rewards = rl_tasks.TestPassReward(workers=2, timeout_s=5.0)([prompt] * 3, ["x + 3", thief, printer], [tests] * 3)
    assert rewards == [1.0, 0.0, 0.0]
