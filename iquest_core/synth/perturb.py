"""Random perturbation of verified problems: variants whose reference solution still passes.

A verified record is {"id", "prompt", "solution", "tests": [assert lines]}. Each variant is made with
a seeded random generator and then checked by running the (transformed) reference solution against
the variant's tests in the sandbox; only passing variants are accepted.

- renamed: the function defined first in the solution and its parameters get new names, consistently
  in prompt, solution and tests;
- reordered: the tests in another order;
- reparameterised: integer literals inside each test's call arguments are shifted by a small random
  amount and the expected value is recomputed by the reference solution in the sandbox (tests of the
  form `assert f(...) == expected` only; the new expected value must be a Python literal).
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from typing import Any

from iquest_core.synth.records import RecordSink

_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda_", "zeta")
_CALL_EQ = re.compile(r"^assert\s+(?P<call>[A-Za-z_]\w*\(.*\))\s*==\s*(?P<expected>.+)$")


def _rename(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    tree = ast.parse(record["solution"])
    function = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef))
    names = [function.name] + [a.arg for a in function.args.args]
    fresh = rng.sample(_WORDS, len(names)) if len(names) <= len(_WORDS) else names
    mapping = {old: f"{new}_{i}" for i, (old, new) in enumerate(zip(names, fresh))}

    def apply(text: str) -> str:
        return re.sub(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b", lambda m: mapping[m.group()], text)
    return {**record, "prompt": apply(record["prompt"]), "solution": apply(record["solution"]),
            "tests": [apply(t) for t in record["tests"]]}


def _reorder(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    tests = list(record["tests"])
    rng.shuffle(tests)
    return {**record, "tests": tests}


def _reparameterise(record: dict[str, Any], rng: random.Random, run: Callable, timeout_s: float) -> dict[str, Any]:
    calls = []
    for test in record["tests"]:
        found = _CALL_EQ.match(test)
        if found:
            calls.append(re.sub(r"(?<![\w.])(\d+)(?![\w.])", lambda m: str(int(m.group()) + rng.randint(1, 3)),
                                found.group("call")))
    if not calls:
        raise ValueError("no test of the form assert f(...) == expected")
    probe = "\n".join(f"print(repr({call}))" for call in calls)
    verdict = run([(record["solution"], probe)], timeout_s=timeout_s)[0]
    if not verdict.passed:
        raise ValueError(f"the reference solution failed on the new arguments ({verdict.status})")
    values = verdict.tests_stdout.strip().splitlines()  # printed by the probe, in the test process
    for value in values:
        ast.literal_eval(value)
    return {**record, "tests": [f"assert {call} == {value}" for call, value in zip(calls, values)]}


def perturb(verified: list[dict[str, Any]], run: Callable, sink: RecordSink, *, seed: int = 0,
            timeout_s: float = 5.0) -> None:
    """Offer a renamed, a reordered and a re-parameterised variant of every verified record to sink."""
    rng = random.Random(seed)
    for item in verified:
        for kind in ("renamed", "reordered", "reparameterised"):
            record = {"kind": f"perturbed:{kind}", "id": f"{item['id']}:{kind}", "source": item["id"]}
            try:
                if kind == "renamed":
                    variant = _rename(item, rng)
                elif kind == "reordered":
                    variant = _reorder(item, rng)
                else:
                    variant = _reparameterise(item, rng, run, timeout_s)
            except (ValueError, SyntaxError, StopIteration) as error:
                sink.offer(record, [f"no-variant:{error}"])
                continue
            check = run([(variant["solution"], "\n".join(variant["tests"]))], timeout_s=timeout_s)[0]
            record.update(prompt=variant["prompt"], solution=variant["solution"], tests=variant["tests"])
            sink.offer(record, [] if check.passed else [f"reference-fails:{check.status}"],
                       text=variant["prompt"] + "\n" + variant["solution"])
