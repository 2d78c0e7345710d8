"""Syntax FIM on parses with ERROR/MISSING nodes: middles are complete nodes clear of the error tokens."""

import random
from pathlib import Path

import pytest
import torch

from iquest_core.data import fim, syntax

HEADER = """#include <stddef.h>
__BEGIN_DECLS
extern int add (int a, int b) __THROW;
static inline int twice (int x) { return add (x, x); }
static inline int square (int x) { int y = x * x; return y; }
__END_DECLS
"""


def _touches(parsed, start, end):
    return any(s <= end and e >= start for s, e in parsed.problem_spans())


def test_macro_header_gives_splits_clear_of_errors():
    parsed = syntax.parse(HEADER, "cpp", blank_macros=True)  # the parse fim.split uses
    assert not syntax.parse(HEADER, "cpp").clean and parsed.clean
    rng = random.Random(0)
    for level in syntax.LEVELS:
        middles = set()
        for _ in range(40):
            split = fim.split(HEADER, level, rng, language="cpp")
            assert split.text == HEADER
            start = len(split.prefix.encode())
            end = start + len(split.middle.encode())
            node = next(n for n in parsed.nodes(level) if (n.start_byte, n.end_byte) == (start, end))
            assert not node.has_error and not _touches(parsed, start, end)
            middles.add(split.middle)
        if level == "function":  # the prototype (its __THROW blanked) is a function-level middle in a header
            assert middles == {"extern int add (int a, int b) __THROW;",
                               "static inline int twice (int x) { return add (x, x); }",
                               "static inline int square (int x) { int y = x * x; return y; }"}


def test_candidates_touching_errors_exist_and_are_excluded():
    parsed = syntax.parse(HEADER, "cpp")
    every = parsed.nodes("statement")
    clear = parsed.nodes_clear_of_errors("statement")
    assert 0 < len(clear) < len(every)
    assert all(n.has_error or _touches(parsed, n.start_byte, n.end_byte) for n in every if n not in clear)


def test_error_tokens_lie_inside_whole_error_spans():
    text = ("__BEGIN_DECLS\nextern int add (int a, int b) __THROW __nonnull ((1));\n"
            "static int one (void) { return 1; }\n__END_DECLS\n")
    parsed = syntax.parse(text, "cpp")
    tokens, whole = parsed.problem_spans(), parsed.problem_spans(whole_errors=True)
    assert [parsed.data[s:e] for s, e in whole if s < e] == [b"int add (int a, int b) __THROW"]
    assert {parsed.data[s:e] for s, e in tokens if s < e} == {b"int", b"__THROW"}  # not the declarator
    assert all(any(ws <= s and e <= we for ws, we in whole) for s, e in tokens)
    spans = lambda nodes: {(n.start_byte, n.end_byte) for n in nodes}  # noqa: E731
    for level in syntax.LEVELS:
        assert spans(parsed.nodes_clear_of_errors(level, whole_errors=True)) <= spans(parsed.nodes_clear_of_errors(level))


def test_a_missing_node_at_a_nodes_end_disqualifies_it():
    text = "int f(void) {\n  return g(1)\n}\nint h(void) { return 2; }\n"
    parsed = syntax.parse(text, "cpp")
    assert any(s == e for s, e in parsed.problem_spans())  # the MISSING ";"
    rng = random.Random(0)
    assert {fim.split(text, "function", rng, language="cpp").middle for _ in range(20)} == {
        "int h(void) { return 2; }"}


TORCH_HEADERS = sorted((Path(torch.__file__).parent / "include" / "c10" / "util").glob("*.h"))[:40]


@pytest.mark.skipif(len(TORCH_HEADERS) < 40, reason="torch ships no C++ headers here")
def test_real_cpp_headers_with_errors_give_splits():
    rng = random.Random(0)
    with_errors = given = 0
    for path in TORCH_HEADERS:
        text = path.read_text(encoding="utf-8")
        if syntax.parse(text, "cpp").clean:
            continue
        with_errors += 1
        given += fim.split(text, "expression", rng, language="cpp") is not None
    assert with_errors >= 10 and given / with_errors >= 0.7, (given, with_errors)


def test_a_node_right_next_to_an_error_token_is_not_a_middle():
    text = "def f():\n    return g(1)$\n\n\ndef h():\n    return k(2)\n"  # "$" is an ERROR token
    parsed = syntax.parse(text, "python")
    touching = [n for n in parsed.nodes("statement") if not n.has_error and _touches(parsed, n.start_byte, n.end_byte)]
    assert [parsed.data[n.start_byte:n.end_byte] for n in touching] == [b"return g(1)"]
    rng = random.Random(0)
    assert {fim.split(text, "statement", rng, language="python").middle for _ in range(30)} == {"return k(2)"}
    assert {fim.split(text, "expression", rng, language="python").middle for _ in range(30)} == {"k(2)"}
