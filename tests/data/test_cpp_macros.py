"""Annotation macros blanked for the C/C++ parse, and the header-level node patterns."""

import random

from iquest_core.data import fim, syntax

TORCH_STYLE = ("namespace at {\n#define TORCH_API __attribute__((visibility(\"default\")))\n"
               "TORCH_API at::Tensor & relu_(at::Tensor & self);\n"
               "TORCH_API int count(const at::Tensor & self) { return 1; }\n}\n")


def _spans(parsed, level):
    return [parsed.data[n.start_byte:n.end_byte].decode() for n in parsed.nodes_clear_of_errors(level)]


def test_blanking_an_export_macro_makes_the_prototype_a_function_middle():
    plain = syntax.parse(TORCH_STYLE, "cpp")
    blanked = syntax.parse(TORCH_STYLE, "cpp", blank_macros=True)
    assert not plain.clean and blanked.clean
    assert _spans(plain, "function") == []
    assert _spans(blanked, "function") == ["at::Tensor & relu_(at::Tensor & self);",
                                           "int count(const at::Tensor & self) { return 1; }"]
    assert blanked.data == TORCH_STYLE.encode()  # the original bytes; only the parse saw blanks
    assert b"TORCH_API" not in blanked.tree.root_node.text.split(b"\n", 2)[2]
    assert b"#define TORCH_API" in blanked.tree.root_node.text  # directive lines are left alone


def test_a_name_whose_blanking_does_not_help_stays():
    text = "int f(void) { return MAX(1, 2); }\nint g(void) { return 1 }\n"  # the error is g's missing ";"
    blanked = syntax.parse(text, "cpp", blank_macros=True)
    assert b"MAX(1, 2)" in blanked.tree.root_node.text
    assert blanked.tree.root_node.has_error  # nothing to blank fixes a missing ";"


def test_blank_macros_only_changes_cpp_and_clean_parses_cost_nothing():
    python = "def f(:\n    return FOO\n"
    assert str(syntax.parse(python, "python", blank_macros=True).tree.root_node) == \
        str(syntax.parse(python, "python").tree.root_node)
    clean = "int f(int x) { return x + 1; }\n"
    assert syntax.parse(clean, "cpp", blank_macros=True).tree.root_node.text == clean.encode()


def test_header_levels_hold_prototypes_macro_functions_and_declarations():
    text = ("#define SQUARE(x) ((x) * (x))\ntypedef struct point { int x; int (*norm)(int); } point;\n"
            "extern char *name_of(int id);\nclass A { public: virtual int area() const = 0; };\n")
    parsed = syntax.parse(text, "cpp")
    assert parsed.clean
    assert _spans(parsed, "function") == ["#define SQUARE(x) ((x) * (x))\n", "extern char *name_of(int id);",
                                          "virtual int area() const = 0;"]  # not the function pointer norm
    assert "typedef struct point { int x; int (*norm)(int); } point;" in _spans(parsed, "statement")
    assert "int x;" in _spans(parsed, "statement")
    assert _spans(parsed, "expression") == ["((x) * (x))"]  # the macro's replacement text
    rng = random.Random(0)
    middles = {fim.split(text, "function", rng, language="cpp").middle for _ in range(60)}
    assert middles == set(_spans(parsed, "function"))


def test_a_statement_macro_is_found_across_blank_and_comment_lines():
    text = ("struct A {\n  int f();\n  __SILENCE_END\n\n  /**\n   * From an int.\n   */\n"
            "  explicit A(int f) { x = f; }\n};\n")
    assert not syntax.parse(text, "cpp").clean
    blanked = syntax.parse(text, "cpp", blank_macros=True)
    assert blanked.clean  # __SILENCE_END, three lines above the error it causes, was blanked
    assert b"__SILENCE_END" not in blanked.tree.root_node.text
