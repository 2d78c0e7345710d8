"""Final answers of math problems checked symbolically (SymPy), not by string match.

    answers_match(r"\\frac{1}{2}", "The answer is $\\boxed{0.5}$")    # True
    answers_match("(1, 2]", r"$(1,2]$")                              # True (intervals)
    answers_match(r"\\{1, 2\\}", "{2, 1}")                            # True (sets: order-free)
    answers_match("12 cm", "12")                                     # True (units dropped)

The final answer of a text is its last \\boxed{...}, else what follows "answer is", else the text.
It is normalised (dollar signs, \\left/\\right, \\dfrac, spacing, \\text{unit} and plain unit words,
degrees, thousands separators "1,000"; a percentage is also read as its fraction) and parsed into one of:
an interval or union of intervals, a set {a, b} or bare list a, b (order-free), a tuple (a, b) (order matters), an
equation "x = 3" (its right-hand side), or one expression (LaTeX through latex2sympy2_extended, plain
text through sympy.parse_expr). Two expressions match when their difference simplifies to 0 or, both
numeric, agree within 1e-6 relative. Anything that does not parse matches only an identical string.
`math-verify` is the reference these decisions are measured against (tests/synth/test_math_check.py).
"""

from __future__ import annotations

import re
from typing import Any

import sympy
from latex2sympy2_extended import latex2sympy
from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application, parse_expr,
                                        standard_transformations)

UNITS = ("cm", "mm", "km", "m", "kg", "g", "mg", "s", "sec", "seconds", "minutes", "min", "hours", "hrs", "h", "days",
         "dollars", "cents", "degrees", "units", "square units", "sq units", "inches", "feet", "ft", "miles", "meters",
         "liters", "l", "ml", "mph", "km/h", "m/s", "percent", "points", "people", "students", "apples")
_UNIT_WORDS = re.compile(r"(?<=[\d}\s)])\s*(?:" + "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True))
                         + r")(?:\^?[23])?\s*$")
_TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor)
_REL_TOL = 1e-6
_CONSTANTS = {"e": sympy.E, "pi": sympy.pi}


def final_answer(text: str) -> str:
    """The last \\boxed{...} of text (braces balanced), else the part after "answer is", else text."""
    start = text.rfind("\\boxed")
    if start >= 0 and "{" in text[start:]:
        i = text.index("{", start) + 1
        depth, j = 1, i
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        return text[i:j - 1]
    found = re.search(r"answer is:?\s*(.+?)\s*\.?\s*$", text, re.IGNORECASE | re.DOTALL)
    return found.group(1) if found else text


def normalise(answer: str) -> str:
    s = answer.strip().strip("$").strip()
    for old, new in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\!", ""),
                     ("\\,", ""), ("\\;", ""), ("\\ ", " "), ("^\\circ", ""), ("^{\\circ}", ""), ("°", ""),
                     ("\\$", ""), ("\\displaystyle", "")):
        s = s.replace(old, new)
    s = re.sub(r"\\(?:text|mbox|mathrm)\{\s*([^{}]*)\}", r" \1", s).strip()
    s = _UNIT_WORDS.sub("", s).strip()
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s) if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s) else s
    return s.rstrip(".").strip()


def _expression(s: str) -> Any:
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    s = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s.replace("\\%", "%").rstrip("%").strip())
    if "\\" in s or "{" in s:
        return latex2sympy(s)
    return parse_expr(s.replace("^", "**"), local_dict=_CONSTANTS, transformations=_TRANSFORMS, evaluate=True)


def _split_top(s: str) -> list[str]:
    """s split at the commas outside any bracket."""
    parts, depth, current = [], 0, ""
    for ch in s:
        depth += ch in "([{" and 1 or (ch in ")]}" and -1 or 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in parts + [current]]


def _interval(s: str) -> Any | None:
    pieces = re.split(r"\\cup|∪|\bU\b", s)
    result = sympy.EmptySet
    for piece in pieces:
        piece = piece.strip()
        if len(piece) < 5 or piece[0] not in "([" or piece[-1] not in ")]":
            return None
        ends = _split_top(piece[1:-1])
        if len(ends) != 2:
            return None
        low, high = (_expression(e.replace("\\infty", "oo").replace("infty", "oo")) for e in ends)
        result = result | sympy.Interval(low, high, piece[0] == "(", piece[-1] == ")")
    return result


def parse_answer(answer: str) -> tuple[str, Any]:
    """(kind, value) of a final answer: ("interval", Set), ("set", [..]), ("tuple", [..]), ("expr", Expr)."""
    s = normalise(answer)
    if s.startswith("\\{") and s.endswith("\\}") or (s.startswith("{") and s.endswith("}") and "," in s):
        inner = s[2:-2] if s.startswith("\\{") else s[1:-1]
        return "set", [_expression(p) for p in _split_top(inner) if p]
    if "\\cup" in s or "∪" in s or (s[:1] in "([" and s[-1:] in ")]" and (s[0] != s[-1] or "infty" in s)):
        value = _interval(s)
        if value is not None and (s[0] == "[" or s[-1] == "]" or "infty" in s or "\\cup" in s or "∪" in s):
            return "interval", value
    bracketed = s[:1] == "(" and s[-1:] == ")"
    parts = _split_top(s[1:-1] if bracketed else s)
    if len(parts) > 1:
        return "tuple" if bracketed else "set", [_expression(p) for p in parts]
    return "expr", _expression(s)


def _same_value(a: Any, b: Any) -> bool:
    try:
        a, b = sympy.sympify(a), sympy.sympify(b)
        if a.is_number and b.is_number:
            fa, fb = complex(a.evalf()), complex(b.evalf())
            return abs(fa - fb) <= _REL_TOL * max(1.0, abs(fa))
        return sympy.simplify(a - b) == 0
    except (TypeError, ValueError, AttributeError, sympy.SympifyError):
        return a == b


def answers_match(gold: str, prediction: str) -> bool:
    """Whether prediction's final answer equals gold's (module docstring)."""
    try:
        (kind_g, g), (kind_p, p) = parse_answer(final_answer(gold)), parse_answer(final_answer(prediction))
    except Exception:  # noqa: BLE001 - any parser failure falls back to the string comparison
        return normalise(final_answer(gold)) == normalise(final_answer(prediction))
    if kind_g != kind_p:
        return False
    if kind_g == "interval":
        return g == p or bool(sympy.simplify(g.symmetric_difference(p)) == sympy.EmptySet)
    if kind_g == "set":
        return len(g) == len(p) and all(any(_same_value(x, y) for y in p) for x in g) \
            and all(any(_same_value(x, y) for x in g) for y in p)
    if kind_g == "tuple":
        return len(g) == len(p) and all(_same_value(x, y) for x, y in zip(g, p))
    if _same_value(g, p):
        return True
    percent = re.search(r"%\s*$", normalise(final_answer(gold)))
    return bool(percent) and _same_value(g / 100, p)
