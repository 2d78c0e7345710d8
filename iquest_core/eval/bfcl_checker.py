"""BFCL's AST rules for Python function calls, as the Berkeley Function Calling Leaderboard scores its
simple, multiple, parallel and parallel_multiple categories.

A call is `{name: {param: value}}` with JSON values; an answer (`possible_answer`) is `{name: {param:
[allowed values]}}`, where "" among the allowed values marks the parameter optional. One call is right when:

- its name is the answer's function name;
- every parameter the function declares required is present, and every parameter present is declared and
  appears in the answer;
- each value has the declared type exactly (bool is not an int, an int passes as a float; "tuple" and
  "array" are lists whose items have the declared item type), or else the type of the answer's own values
  (BFCL's "variable" case: an answer written as a name where the schema says a number);
- each value is one of the allowed ones: strings compared after dropping the characters ` ,./-_*^`,
  lower-casing and turning ' into " (also inside lists and dicts); dicts key by key; lists of dicts
  element by element;
- every answer parameter without "" among its allowed values is present.

Categories: simple (exactly one call), multiple (one call, the function chosen among several), parallel
and parallel_multiple (as many calls as answers, matched in any order, each answer taking the first
unmatched call that passes). The verdict is (passed, error_type) with BFCL's error type names.
"""

from __future__ import annotations

import re

PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "float": float, "boolean": bool,
                                 "array": list, "tuple": list, "dict": dict, "any": str}
NESTED = ("array", "tuple")
CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")
_IGNORED = re.compile(r"[ ,./\-_*^]")

Verdict = tuple[bool, str]
OK: Verdict = (True, "")


def standardize(text: str) -> str:
    return _IGNORED.sub("", text).lower().replace("'", '"')


def _standard(value):
    return standardize(value) if type(value) is str else value


def _answer_type(allowed: list) -> type | None:
    """The type of the first allowed value that is not the optional marker ""."""
    return next((type(a) for a in allowed if a != ""), None)


def _type_ok(value, allowed: list, expected: type, item_type: type | None) -> tuple[bool, bool]:
    """(valid, is_variable) of value's type against the declared one (see the module docstring)."""
    answer_type = _answer_type(allowed)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if item_type is None:
            return True, is_variable
        for option in allowed:
            if type(option) is not list or all(_type_ok(v, option, item_type, None)[0] for v in value):
                return True, is_variable
        return False, is_variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, is_variable


def _dict_ok(value: dict, options: list) -> bool:
    for option in options:
        if option == "":
            continue
        if all(k in option and _standard(v) in [_standard(a) for a in option[k]] for k, v in value.items()) \
                and all(k in value or "" in allowed for k, allowed in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list, options: list) -> bool:
    return any(len(value) == len(option) and all(_dict_ok(v, [o]) for v, o in zip(value, option))
               for option in options)


def _value_ok(value, allowed: list, expected: type, item_type: type | None, is_variable: bool) -> bool:
    if not is_variable:
        if expected is dict:
            return _dict_ok(value, allowed)
        if expected is list and item_type is dict:
            return _list_of_dicts_ok(value, allowed)
        if expected is str:
            return _standard(value) in [standardize(a) for a in allowed if type(a) is str]
        if expected is list:
            return [_standard(v) for v in value] in [[_standard(a) for a in option] for option in allowed]
    return value in allowed


def check_call(function: dict, call: dict, answer: dict) -> Verdict:
    """One call against one function description and its answer {name: {param: [allowed]}}."""
    name = function["name"]
    allowed_by_param = next(iter(answer.values()))
    if name not in call:
        return False, "simple_function_checker:wrong_func_name"
    arguments = call[name]
    declared = function["parameters"]["properties"]
    if any(p not in arguments for p in function["parameters"].get("required", [])):
        return False, "simple_function_checker:missing_required"
    for param, value in arguments.items():
        if param not in declared or param not in allowed_by_param:
            return False, "simple_function_checker:unexpected_param"
        kind = declared[param]["type"]
        expected = PYTHON_TYPES[kind]
        item_type = PYTHON_TYPES[declared[param]["items"]["type"]] if kind in NESTED else None
        if expected is float and type(value) is int:
            value = float(value)
        allowed = allowed_by_param[param]
        type_valid, is_variable = _type_ok(value, allowed, expected, item_type)
        if not type_valid:
            return False, "type_error:nested" if item_type is not None and type(value) is list else "type_error:simple"
        if not _value_ok(value, allowed, expected, item_type, is_variable):
            return False, "value_error"
    if any(p not in arguments and "" not in allowed for p, allowed in allowed_by_param.items()):
        return False, "simple_function_checker:missing_optional"
    return OK


def _function(functions: list[dict], name: str) -> dict:
    found = [f for f in functions if f["name"] == name]
    if not found:
        raise ValueError(f"functions: the answer's function {name!r} is not among the item's functions")
    return found[0]


def check_calls(category: str, functions: list[dict], calls: list[dict], answers: list[dict]) -> Verdict:
    """The verdict of a completion's calls (in order) for one BFCL item of `category`."""
    if category not in CATEGORIES:
        raise ValueError(f"category: unknown category {category!r}; expected one of {CATEGORIES}")
    if len(calls) != len(answers):
        return False, f"{category}:wrong_count"
    if category in ("simple", "multiple"):
        return check_call(_function(functions, next(iter(answers[0]))), calls[0], answers[0])
    unmatched = list(range(len(calls)))
    for answer in answers:
        function = _function(functions, next(iter(answer)))
        match = next((i for i in unmatched if check_call(function, calls[i], answer)[0]), None)
        if match is None:
            return False, f"{category}:cannot_find_match"
        unmatched.remove(match)
    return OK


def canonical_value(allowed: list):
    """A value the answer accepts: the first allowed one that is not "", with dicts (and lists of dicts)
    of allowed values resolved the same way, key by key; None when only "" (omit the parameter)."""
    value = next((a for a in allowed if a != ""), None)
    if isinstance(value, dict):
        return _canonical_dict(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
            and all(isinstance(x, list) for v in value for x in v.values()):
        return [_canonical_dict(v) for v in value]
    return value


def _canonical_dict(option: dict) -> dict:
    out = {}
    for key, allowed in option.items():
        value = canonical_value(allowed)
        if value is not None:
            out[key] = value
    return out


def canonical_calls(functions: list[dict], answers: list[dict]) -> list[dict]:
    """The calls {name: {param: value}} that the answers accept, one per answer, in order. A parameter the
    function does not declare is left out (a few answers list one, always as optional)."""
    calls = []
    for answer in answers:
        (name, params), = answer.items()
        declared = _function(functions, name)["parameters"]["properties"]
        calls.append({name: {p: v for p, a in params.items()
                             if p in declared and (v := canonical_value(a)) is not None}})
    return calls
