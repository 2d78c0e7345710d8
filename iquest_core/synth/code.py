"""Code synthesis verified by execution: test-driven synthesis and reverse flow.

Problems are {"id", "prompt"} (a task with the function signature); verified records are
{"id", "prompt", "solution", "tests": [assert lines]}. `client` is anything with
`chat_many(conversations, **params) -> list[str]` (serve.client.ChatClient); `run` is the sandbox's
`run_many` (passed in so that tests can count calls). Every sandbox verdict that is not "passed"
(failed, error, timeout, memory) counts as a failure.

- test_driven: `samples` solutions and `samples` test suites are sampled; every solution runs against
  every distinct assert (one sandbox run each); `codet.dual_agreement` picks the trusted solution and
  tests; the pair is run once more together and kept only if that run passes too.
- reverse_flow: for verified code, the model writes a problem statement; `samples` fresh solutions of
  that statement are run against the original tests; kept when at least one passes (the statement
  says enough to solve the task), with the original solution and tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from iquest_core.serve.client import EndpointError
from iquest_core.synth.codet import dual_agreement
from iquest_core.synth.records import RecordSink

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
MAX_TESTS = 12


def extract_code(text: str) -> str:
    """The first fenced code block of text, else text itself."""
    found = _FENCE.search(text)
    return (found.group(1) if found else text).strip()


def extract_tests(texts: list[str]) -> list[str]:
    """The distinct single-line assert statements in texts, in order of appearance (at most MAX_TESTS)."""
    tests: list[str] = []
    for text in texts:
        for line in extract_code(text).splitlines():
            line = line.strip()
            if line.startswith("assert ") and line not in tests:
                tests.append(line)
    return tests[:MAX_TESTS]


def _ask(role: str, prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": role}, {"role": "user", "content": prompt}]


SOLVE = "Write a correct Python solution. Answer with one ```python code block only."
TEST = "Write 5 single-line Python assert statements that test the function. Answer with one ```python block."
DESCRIBE = "Write the problem statement this Python function solves, with its signature. Do not show code."


def test_driven(problems: list[dict[str, Any]], client, run: Callable, sink: RecordSink, *, samples: int = 4,
                temperature: float = 0.8, max_tokens: int = 512, timeout_s: float = 5.0,
                min_solutions: int = 2, min_tests: int = 2) -> None:
    """Offer one record per problem to sink (module docstring)."""
    params = {"temperature": temperature, "max_tokens": max_tokens}
    for problem in problems:
        record = {"kind": "test_driven", "id": problem["id"], "prompt": problem["prompt"]}
        try:
            solutions = [extract_code(t) for t in client.chat_many([_ask(SOLVE, problem["prompt"])] * samples,
                                                                   **params)]
            tests = extract_tests(client.chat_many([_ask(TEST, problem["prompt"])] * samples, **params))
        except EndpointError as error:
            sink.offer(record, [f"endpoint-error:{error}"])
            continue
        if not tests:
            sink.offer(record, ["no-tests"])
            continue
        verdicts = run([(s, t) for s in solutions for t in tests], timeout_s=timeout_s)
        statuses = [[v.status for v in verdicts[i * len(tests):(i + 1) * len(tests)]] for i in range(len(solutions))]
        choice = dual_agreement(statuses, min_solutions=min_solutions, min_tests=min_tests)
        if choice.reason:
            sink.offer(record, [choice.reason])
            continue
        kept = [tests[j] for j in choice.tests]
        solution = solutions[choice.solution]
        confirm = run([(solution, "\n".join(kept))], timeout_s=timeout_s)[0]
        if not confirm.passed:
            sink.offer(record, [f"inconsistent-rerun:{confirm.status}"])
            continue
        sink.offer({**record, "solution": solution, "tests": kept, "agreeing_solutions": len(choice.agreeing)}, [],
                   text=problem["prompt"] + "\n" + solution)


def reverse_flow(verified: list[dict[str, Any]], client, run: Callable, sink: RecordSink, *, samples: int = 4,
                 temperature: float = 0.8, max_tokens: int = 512, timeout_s: float = 5.0) -> None:
    """Offer one record per verified program to sink (module docstring)."""
    params = {"temperature": temperature, "max_tokens": max_tokens}
    for item in verified:
        record = {"kind": "reverse_flow", "id": item["id"], "solution": item["solution"], "tests": item["tests"]}
        try:
            statement = client.chat_many([_ask(DESCRIBE, item["solution"])], temperature=0, max_tokens=max_tokens)[0]
            if not statement.strip():
                sink.offer(record, ["no-statement"])
                continue
            resolved = [extract_code(t) for t in client.chat_many([_ask(SOLVE, statement)] * samples, **params)]
        except EndpointError as error:
            sink.offer(record, [f"endpoint-error:{error}"])
            continue
        tests = "\n".join(item["tests"])
        passed = sum(v.passed for v in run([(s, tests) for s in resolved], timeout_s=timeout_s))
        reasons = [] if passed else ["resolve-failed"]
        sink.offer({**record, "prompt": statement, "resolved": f"{passed}/{len(resolved)}"}, reasons,
                   text=statement + "\n" + item["solution"])
