"""BFCL: canonical answers score 100% in every category, each kind of wrong call is scored wrong, the scorer
agrees with bfcl-eval's own AST checker on canonical and mutated completions, and bad input is named."""

from __future__ import annotations

import copy
import json
import sys
import types

import pytest

pytest.importorskip("bfcl_eval")

from iquest_core.eval import bfcl  # noqa: E402
from iquest_core.eval.bfcl_checker import CATEGORIES, canonical_calls, check_calls  # noqa: E402

ITEMS = bfcl.load_items(list(CATEGORIES))


def _item(item_id: str) -> dict:
    return next(i for i in ITEMS if i["id"] == item_id)


def _canonical(item: dict) -> list[dict]:
    return canonical_calls(item["functions"], item["answers"])


def test_canonical_completions_pass_every_category(tmp_path):
    summary = bfcl.bfcl_main(bfcl._parser().parse_args(["--canonical", "--output", str(tmp_path)]))
    assert summary["items"] == 1000
    assert {c: s["accuracy"] for c, s in summary["categories"].items()} == dict.fromkeys(CATEGORIES, 1.0)
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 1000 and all(r["passed"] for r in rows)


def test_completion_round_trips_through_the_chat_template():
    item = _item("parallel_multiple_0")
    calls = _canonical(item)
    assert bfcl.parse_calls(bfcl.render_calls(calls)) == calls
    assert bfcl.score(item, bfcl.render_calls(calls))["passed"]


def test_wrong_name_missing_required_and_disallowed_value_are_wrong():
    item = _item("simple_python_0")  # calculate_triangle_area(base=10, height=5, unit="units" optional)
    good = _canonical(item)
    (name, args), = good[0].items()
    assert check_calls("simple", item["functions"], good, item["answers"]) == (True, "")
    renamed = [{name + "_v2": args}]
    assert check_calls("simple", item["functions"], renamed, item["answers"]) == (
        False, "simple_function_checker:wrong_func_name")
    required = item["functions"][0]["parameters"]["required"][0]
    missing = [{name: {k: v for k, v in args.items() if k != required}}]
    assert check_calls("simple", item["functions"], missing, item["answers"]) == (
        False, "simple_function_checker:missing_required")
    outside = [{name: {**args, required: args[required] + 1}}]
    assert check_calls("simple", item["functions"], outside, item["answers"]) == (False, "value_error")
    wrong_type = [{name: {**args, required: str(args[required])}}]
    assert check_calls("simple", item["functions"], wrong_type, item["answers"])[0] is False


def test_strings_compare_after_bfcl_standardisation():
    item = next(i for i in ITEMS if i["category"] == "simple" and any(
        isinstance(v, str) and v for vals in next(iter(i["answers"][0].values())).values() for v in vals))
    (name, args), = _canonical(item)[0].items()
    param = next(p for p, v in args.items() if isinstance(v, str) and v)
    varied = [{name: {**args, param: args[param].upper().replace("", " ").strip()}}]  # case and spaces ignored
    assert check_calls("simple", item["functions"], varied, item["answers"])[0]
    other = [{name: {**args, param: args[param] + "zz"}}]
    assert check_calls("simple", item["functions"], other, item["answers"])[0] is False


def test_parallel_calls_match_in_any_order_but_not_twice():
    item = _item("parallel_0")
    calls = _canonical(item)
    assert len(calls) >= 2
    assert check_calls("parallel", item["functions"], calls[::-1], item["answers"])[0]
    assert check_calls("parallel", item["functions"], [calls[0]] * len(calls), item["answers"])[0] is False
    assert check_calls("parallel", item["functions"], calls[:-1], item["answers"]) == (
        False, "parallel:wrong_count")


def test_undecodable_completion_is_wrong():
    row = bfcl.score(_item("simple_python_0"), "<tool_call>\n{not json}\n</tool_call>")
    assert (row["passed"], row["error_type"]) == (False, "decode_error")


def _official_checker():
    """bfcl-eval's ast_checker, runnable offline: its model_config module imports every API client
    (anthropic, openai, ...), of which the AST rules use only a name-mangling flag, off here."""
    class _NoMangling(dict):
        def __missing__(self, key):
            return types.SimpleNamespace(underscore_to_dot=False)
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _NoMangling()
    saved = sys.modules.get(stub.__name__)
    sys.modules[stub.__name__] = stub
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    finally:
        if saved is None:
            sys.modules.pop(stub.__name__)
        else:
            sys.modules[stub.__name__] = saved
    return lambda item, calls: ast_checker(item["functions"], calls, item["answers"], Language.PYTHON,
                                           item["category"].replace("simple", "simple_python"), "m")["valid"]


def _mutations(calls: list[dict]):
    """Canonical calls and variants of them, some right (reordered, int for float) and most wrong."""
    yield calls
    yield calls[::-1]
    yield calls + calls[:1]
    yield []
    for i, call in enumerate(calls):
        (name, args), = call.items()
        yield calls[:i] + [{name + "x": args}] + calls[i + 1:]
        for param, value in args.items():
            yield calls[:i] + [{name: {k: v for k, v in args.items() if k != param}}] + calls[i + 1:]
            for changed in (str(value), value * 2 if not isinstance(value, (dict, bool)) else None, [value],
                            int(value) if isinstance(value, float) and value.is_integer() else None):
                if changed is not None:
                    yield calls[:i] + [{name: {**args, param: changed}}] + calls[i + 1:]
        yield calls[:i] + [{name: {**args, "extra_param": 1}}] + calls[i + 1:]


def test_agrees_with_bfcl_eval_checker_on_canonical_and_mutated_calls():
    official = _official_checker()
    compared = disagreements = 0
    verdicts = set()
    for item in ITEMS:
        for calls in _mutations(_canonical(item)):
            ours = check_calls(item["category"], item["functions"], copy.deepcopy(calls), item["answers"])[0]
            theirs = official(item, copy.deepcopy(calls))
            compared += 1
            verdicts.add(ours)
            disagreements += ours != theirs
            assert ours == theirs, (item["id"], calls)
    assert compared > 10000 and verdicts == {True, False} and disagreements == 0


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="--categories: unknown category 'java'"):
        bfcl.parse_categories("simple,java")
    other = tmp_path / "humaneval.jsonl"
    other.write_text(json.dumps({"id": "HumanEval/0", "completion": "    return 1\n"}) + "\n")
    with pytest.raises(ValueError, match="--completions: .*'HumanEval/0' is not a bfcl item"):
        bfcl.bfcl_main(bfcl._parser().parse_args(["--completions", str(other), "--output", str(tmp_path / "o")]))
    assert not (tmp_path / "o").exists()
