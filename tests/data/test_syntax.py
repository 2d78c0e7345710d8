import random

import pytest

from iquest_core.data import fim, syntax
from iquest_core.data.steps.code import syntax_verdict

BROKEN = {"python": "def f(:\n    return 1\n", "java": "class A { void f( { } }", "go": "func main( {\n",
          "rust": "fn main( {", "cpp": "int main( {", "c_sharp": "class A { void F( { } }",
          "javascript": "function f( {", "typescript": "let x: = ;"}


@pytest.mark.parametrize("language", syntax.LANGUAGES)
def test_every_node_type_exists_in_the_grammar(language):
    grammar = syntax.grammar(language)
    for level in syntax.LEVELS:
        for kind in syntax.NODE_TYPES[language][level]:
            assert grammar.id_for_node_kind(kind, True) is not None, (language, level, kind)
        syntax.level_query(language, level)


@pytest.mark.parametrize("language", syntax.LANGUAGES)
def test_error_share(language):
    broken = syntax.parse(BROKEN[language], language)
    assert not broken.clean and 0 < broken.error_share() <= 1
    assert syntax.parse("", language).error_share() == 0.0


def test_error_share_grows_with_damage():
    good = "def f(x):\n    return x + 1\n" * 20
    one = syntax.parse(good.replace("(x)", "(x", 1), "python").error_share()
    many = syntax.parse(good.replace("(x)", "(x"), "python").error_share()
    assert 0 < one < many


def test_char_offsets_of_non_ascii_text():
    text = "\ufeffa = '😀'\nb = '注'\n"
    parsed = syntax.parse(text, "python")
    for node in parsed.nodes("statement"):
        assert text[parsed.char_offset(node.start_byte):parsed.char_offset(node.end_byte)] == node.text.decode()
    assert [text[parsed.char_offset(n.start_byte):parsed.char_offset(n.end_byte)] for n in parsed.nodes("statement")] \
        == ["a = '😀'", "b = '注'"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="'fortran'"):
        syntax.parse("x", "fortran")
    with pytest.raises(ValueError, match="'clause'"):
        syntax.level_query("python", "clause")
    with pytest.raises(ValueError, match="Unicode"):
        syntax.parse("\ud800", "python")


def test_a_parse_over_its_budget_has_no_tree_and_every_user_refuses_it(monkeypatch):
    code = "def total(values):\n    return sum(v for v in values if v > 0)\n" * 20
    assert syntax.parse(code, "python").clean
    monkeypatch.setattr(syntax, "CALLS_PER_BYTE", 0.0)
    monkeypatch.setattr(syntax, "MIN_CALLS", 0)
    parsed = syntax.parse(code, "python")  # cancelled, not minutes of error recovery
    assert parsed.tree is None and not parsed.clean and parsed.error_share() == 1.0
    assert parsed.nodes("statement") == [] and parsed.problem_spans() == [(0, len(code))]
    assert fim.split(code, "statement", random.Random(0), language="python") is None
    assert syntax_verdict("a.py", code, 0.5) == "dropped:python"
    monkeypatch.setattr(syntax, "MIN_CALLS", 100)
    assert syntax.parse("x = 1\n", "python").clean  # the parser was reset after the cancelled parse
