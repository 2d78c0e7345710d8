"""The math and debate pipelines with scripted endpoints: what is accepted, what is rejected and why."""

from iquest_core.serve.client import EndpointError
from iquest_core.synth.debate import debate_pipeline
from iquest_core.synth.math_pipeline import math_pipeline
from iquest_core.synth.records import RecordSink


class Scripted:
    """chat_many returns `samples`; chat (a judge) prefers the shown answer containing `good`."""

    def __init__(self, samples, good="Paris", fail=False):
        self.samples, self.good, self.fail = samples, good, fail

    def chat_many(self, conversations, **params):
        if self.fail:
            raise EndpointError("http://x/v1/chat/completions", "chat_many item 0", 5, "timed out")
        return self.samples[:len(conversations)]

    def chat(self, messages, **params):
        body = messages[-1]["content"]
        first = body.split("Answer 1:\n")[1].split("\n\nAnswer 2:")[0]
        return "VERDICT: 1" if self.good in first else "VERDICT: 2"


def test_math_keeps_a_symbolically_right_solution_only():
    sink = RecordSink()
    problems = [{"id": "half", "problem": "1/4 + 1/4?", "answer": r"\frac{1}{2}"},
                {"id": "three", "problem": "2x = 6", "answer": "3"}]
    math_pipeline(problems[:1], Scripted(["so 0.25", r"thus $\boxed{0.5}$"]), sink, samples=2)
    math_pipeline(problems[1:], Scripted(["x = 4", r"\boxed{2}"]), sink, samples=2)
    math_pipeline(problems[1:], Scripted([], fail=True), sink, samples=2)
    assert [r["id"] for r in sink.accepted] == ["half"] and sink.accepted[0]["solution"].endswith("0.5}$")
    assert [r["reasons"] for r in sink.rejected] == [
        ["wrong-answer"], ["endpoint-error:chat_many item 0 to http://x/v1/chat/completions failed after 5 "
                           "attempt(s): timed out"]]


def test_debate_pipeline_makes_preference_pairs():
    sink = RecordSink()
    prompts = [{"id": "capital", "prompt": "Capital of France?"}]
    debate_pipeline(prompts, Scripted(["Lyon.", "Paris."]), sink, judges=3)
    debate_pipeline(prompts, Scripted(["Paris.", "Paris."]), sink)
    debate_pipeline(prompts, Scripted(["Nice.", "Lyon."]), sink, rounds=2)
    assert sink.accepted == [{"kind": "debate", "id": "capital", "prompt": "Capital of France?", "chosen": "Paris.",
                              "rejected": "Lyon.", "rounds": 1}]
    assert [r["reasons"] for r in sink.rejected] == [["identical-candidates"], ["no-consensus"]]
