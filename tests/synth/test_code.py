"""Test-driven synthesis, reverse flow and perturbation: nothing whose tests fail, time out or disagree
is ever accepted (property test over random sandbox outcomes), and the real sandbox end to end."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from iquest_core.sandbox import run_many
from iquest_core.synth import code as synth_code
from iquest_core.synth.code import extract_tests, reverse_flow
from iquest_core.synth.codet import dual_agreement
from iquest_core.synth.perturb import perturb
from iquest_core.synth.records import RecordSink

STATUS = st.sampled_from(["passed", "failed", "timeout", "error", "memory"])


@dataclass
class FakeVerdict:
    status: str
    stdout: str = ""

    @property
    def passed(self):
        return self.status == "passed"


class ScriptedClient:
    """chat_many answers from a list of scripted replies per call kind (solve / tests / describe)."""

    def __init__(self, solutions, tests, statement="Add two numbers."):
        self.solutions, self.tests, self.statement = solutions, tests, statement

    def chat_many(self, conversations, **params):
        role = conversations[0][0]["content"]
        source = self.tests if "assert" in role else [self.statement] if "statement" in role else self.solutions
        return [source[i % len(source)] for i in range(len(conversations))]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.lists(st.lists(STATUS, min_size=n, max_size=n), min_size=1,
                                                    max_size=6)),
       st.integers(1, 3), st.integers(1, 3))
def test_dual_agreement_keeps_only_agreeing_passing_pairs(statuses, min_solutions, min_tests):
    choice = dual_agreement(statuses, min_solutions=min_solutions, min_tests=min_tests)
    if choice.solution is None:
        assert choice.reason
        return
    assert len(choice.agreeing) >= min_solutions and len(choice.tests) >= min_tests
    for i in choice.agreeing:  # every agreeing solution passed exactly the kept tests, nothing timed out there
        assert [j for j, s in enumerate(statuses[i]) if s == "passed"] == list(choice.tests)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(STATUS, min_size=3, max_size=3), min_size=4, max_size=4), STATUS)
def test_pipeline_never_accepts_failing_timed_out_or_disagreeing_records(matrix, rerun):
    solutions = [f"def f(x):\n    return x + {i}" for i in range(4)]
    tests = ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]
    runs = []

    def run(jobs, timeout_s):
        runs.append(jobs)
        if len(runs) == 1:
            return [FakeVerdict(matrix[solutions.index(s)][tests.index(t)]) for s, t in jobs]
        return [FakeVerdict(rerun)]
    sink = RecordSink()
    synth_code.test_driven([{"id": "p", "prompt": "f"}], ScriptedClient(solutions, ["```python\n" + "\n".join(tests) + "\n```"]),
                run, sink)
    assert len(sink.accepted) + len(sink.rejected) == 1
    for record in sink.accepted:
        i = solutions.index(record["solution"])
        assert all(matrix[i][tests.index(t)] == "passed" for t in record["tests"])
        agreeing = [k for k in range(4) if [s == "passed" for s in matrix[k]] == [s == "passed" for s in matrix[i]]]
        assert len(agreeing) >= 2 and len(record["tests"]) >= 2 and rerun == "passed"
    for record in sink.rejected:
        assert record["reasons"]


def test_real_sandbox_accepts_agreeing_solutions_and_rejects_a_wrong_consensus():
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    hang = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    tests = "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\nassert add(-1, 1) == 0\n```"
    sink = RecordSink()
    synth_code.test_driven([{"id": "ok", "prompt": "def add(a, b):"}], ScriptedClient([good, good, wrong, hang], [tests]),
                run_many, sink, timeout_s=1)
    synth_code.test_driven([{"id": "split", "prompt": "def add(a, b):"}], ScriptedClient([good, wrong, hang, "nothing"], [tests]),
                run_many, sink, timeout_s=1)
    assert [r["id"] for r in sink.accepted] == ["ok"] and sink.accepted[0]["agreeing_solutions"] == 2
    assert sink.accepted[0]["tests"] == ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"]
    assert sink.rejected[0]["reasons"] == ["disagreement:only-1-solutions-agree"]

    verified = sink.accepted
    reverse = RecordSink()
    reverse_flow(verified, ScriptedClient([good], [tests]), run_many, reverse)
    reverse_flow(verified, ScriptedClient([wrong], [tests]), run_many, reverse)
    assert len(reverse.accepted) == 1 and reverse.rejected[0]["reasons"] == ["resolve-failed"]

    variants = RecordSink()
    perturb(verified, run_many, variants, seed=3)
    kinds = sorted(r["kind"] for r in variants.accepted)
    assert kinds == ["perturbed:renamed", "perturbed:reordered", "perturbed:reparameterised"], variants.rejected
    renamed = next(r for r in variants.accepted if r["kind"] == "perturbed:renamed")
    assert "add" not in renamed["solution"] and renamed["tests"][0].startswith("assert ")
    reparam = next(r for r in variants.accepted if r["kind"] == "perturbed:reparameterised")
    assert reparam["tests"] != verified[0]["tests"] and len(reparam["tests"]) == len(verified[0]["tests"])


def test_extract_tests_keeps_distinct_assert_lines():
    assert extract_tests(["```python\nassert f(1) == 1\nx = 2\nassert f(1) == 1\n```", "assert g()"]) == \
        ["assert f(1) == 1", "assert g()"]


def test_a_refusing_endpoint_is_retried_then_named_in_the_rejection():
    from iquest_core.serve.client import ChatClient
    from tests.serve.stub import StubEndpoint

    with StubEndpoint(["malformed"]) as stub, ChatClient(stub.url, "m", max_retries=2, backoff_s=0.01) as client:
        sink = RecordSink()
        synth_code.test_driven([{"id": "p", "prompt": "def f():"}], client, run_many, sink, samples=2)
    assert len(stub.requests) == 6 and sink.accepted == []  # 2 samples x 3 attempts, then the first error stops
    (reason,) = sink.rejected[0]["reasons"]
    assert reason.startswith("endpoint-error:chat_many item 0 to " + stub.url) and "malformed JSON" in reason
