import ast
import random
import textwrap

import pytest

from iquest_core.data import fim, syntax
from iquest_core.data.tokenizer import SPECIAL_TOKENS
from tests.data.conftest import STDLIB, corpus

SYNTAX_MODES = syntax.LEVELS


def enclosing_types(parsed: syntax.Parsed, start: int, end: int) -> set[str]:
    """Types of every node spanning exactly bytes [start, end) (a walk up from the smallest one)."""
    node = parsed.tree.root_node.descendant_for_byte_range(start, end)
    types = set()
    while node is not None and node.start_byte == start and node.end_byte == end:
        types.add(node.type)
        node = node.parent
    return types


def test_round_trip_every_mode_on_the_real_corpus():
    rng = random.Random()
    files = corpus()
    assert {language for _, language, _ in files} == set(fim.LANGUAGES)
    for path, language, text in files:
        parsed = syntax.parse(text, language, blank_macros=True)  # the parse fim.split uses
        for mode in fim.MODES:
            for _ in range(5):
                split = fim.split(text, mode, rng, language=language)
                assert split is not None, (path, mode)
                assert split.prefix + split.middle + split.suffix == text
                assert split.middle, (path, mode)
                if mode in SYNTAX_MODES:
                    bom = 1 if text.startswith("\ufeff") else 0
                    start = len(split.prefix[bom:].encode())
                    end = start + len(split.middle.encode())
                    assert parsed.data[start:end].decode() == split.middle
                    assert (start, end) in {(n.start_byte, n.end_byte) for n in parsed.nodes(mode)}, (path, mode)
                    assert all(e < start or s > end for s, e in parsed.problem_spans()), (path, mode)


def test_round_trip_on_the_standard_library(tokenizer):
    rng = random.Random()
    paths = sorted(STDLIB.glob("*.py"))[1::8]  # 21 modules, about 0.5 MB
    assert len(paths) >= 20, STDLIB
    for path in paths:
        text = path.read_text(encoding="utf-8")
        parsed = syntax.parse(text, "python")
        assert parsed.clean, path
        has_function = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(ast.parse(text)))
        for mode in fim.MODES:
            split = fim.split(text, mode, rng, language="python")
            if mode == "function" and not has_function:
                assert split is None, path
                continue
            assert split.text == text and split.middle, (path, mode)
            if mode in SYNTAX_MODES:
                start = len(split.prefix.encode())
                end = start + len(split.middle.encode())
                assert enclosing_types(parsed, start, end) & set(syntax.NODE_TYPES["python"][mode]), (path, mode)
            ids = tokenizer.encode_fim(split)
            assert tokenizer.decode(ids) == fim.format_file(split)


def test_the_corpus_has_non_ascii_files_and_one_that_does_not_parse():
    files = corpus()
    assert sum(not text.isascii() for _, _, text in files) >= 8
    assert any(text.startswith("\ufeff") for _, _, text in files)
    assert [p.name for p, language, text in files if not syntax.parse(text, language).clean] == ["extension.cpp"]


def test_python_syntax_middles_are_what_python_calls_them():
    rng = random.Random()
    checked = 0
    for _, language, text in corpus():
        if language != "python":
            continue
        for _ in range(40):
            split = fim.split(text, "expression", rng, language="python")
            assert isinstance(ast.parse(f"({split.middle})", mode="eval").body, ast.expr)
            for mode, kinds in (("statement", ast.stmt), ("function", (ast.FunctionDef, ast.AsyncFunctionDef))):
                split = fim.split(text, mode, rng, language="python")
                indent = split.prefix[split.prefix.rfind("\n") + 1:]
                if indent.strip():
                    continue  # a statement after `if x:` on the same line
                body = ast.parse(textwrap.dedent(indent + split.middle)).body
                assert len(body) == 1 and isinstance(body[0], kinds), split.middle
                checked += 1
    assert checked > 100


def test_offsets_with_bom_cjk_and_emoji():
    text = "\ufeff# 注释 😀😀\ns = '🎉'\ndef 函数(x):\n    return x + '✓'\n"
    rng = random.Random()
    seen = set()
    for _ in range(50):
        for mode in SYNTAX_MODES:
            split = fim.split(text, mode, rng, language="python")
            assert split.text == text
            seen.add((mode, split.middle))
    assert ("function", "def 函数(x):\n    return x + '✓'") in seen
    assert ("statement", "s = '🎉'") in seen
    assert ("expression", "x + '✓'") in seen


def test_line_mode_takes_whole_lines():
    rng = random.Random()
    text = "a = 1\n\n   \nb = 2\nc = 3\r\nd = 4"
    for _ in range(200):
        split = fim.split(text, "line", rng)
        assert split.text == text
        assert split.prefix == "" or split.prefix.endswith("\n")
        assert split.suffix == "" or split.middle.endswith("\n")
        assert 1 <= split.middle.count("\n") + (not split.middle.endswith("\n")) <= fim.MAX_LINES
        assert split.middle.split("\n")[0].strip()
    assert fim.split(" \n\t\n", "line", rng) is None


def test_char_mode_reaches_both_ends():
    rng = random.Random()
    splits = {(s.prefix, s.middle, s.suffix) for s in (fim.split("ab", "char", rng) for _ in range(200))}
    assert splits == {("", "a", "b"), ("", "ab", ""), ("a", "b", "")}
    assert fim.split("", "char", rng) is None


def test_syntax_modes_return_none_without_a_node_clear_of_errors():
    rng = random.Random()
    assert fim.split("x = 1\n", "function", rng, language="python") is None
    broken = "def f(:\n    return 1\n"  # the function holds the ERROR node; its statement does not
    assert fim.split(broken, "function", rng, language="python") is None
    assert {fim.split(broken, "statement", rng, language="python").middle for _ in range(20)} == {"return 1"}
    assert fim.split("", "expression", rng, language="go") is None


def test_deterministic_for_a_seed():
    _, language, text = corpus()[0]
    for mode in fim.MODES:
        assert fim.split(text, mode, random.Random(7), language) == fim.split(text, mode, random.Random(7), language)


def test_bad_mode_and_language():
    rng = random.Random()
    with pytest.raises(ValueError, match="'word'"):
        fim.split("x", "word", rng)
    for mode in fim.MODES:
        with pytest.raises(ValueError, match="'cobol'"):
            fim.split("x", mode, rng, language="cobol")
    with pytest.raises(ValueError, match="text"):
        fim.split(b"x = 1", "char", rng)
    with pytest.raises(ValueError, match="language"):
        fim.split("x", "statement", rng)


def test_formats_exactly():
    split = fim.FimSplit("def f():\n    ", "return 1", "\n")
    assert fim.format_file(split) == "<|fim_prefix|>def f():\n    <|fim_suffix|>\n<|fim_middle|>return 1<|im_end|>"
    assert fim.format_repo("org/r", [("a.py", "A"), ("b/c.py", "C\n")], "t.py", split) == (
        "<|repo_name|>org/r\n<|file_sep|>a.py\nA\n<|file_sep|>b/c.py\nC\n\n"
        "<|file_sep|>t.py\n<|fim_prefix|>def f():\n    <|fim_suffix|>\n<|fim_middle|>return 1<|im_end|>")
    text, spans = fim.render(fim.repo_parts("r", [("a", "<|im_end|>")], "t", split))
    assert [text[a:b] for a, b in spans] == ["<|repo_name|>", "<|file_sep|>", "<|file_sep|>", "<|fim_prefix|>",
                                             "<|fim_suffix|>", "<|fim_middle|>", "<|im_end|>"]
    assert all(text[a:b] in SPECIAL_TOKENS for a, b in spans)


def test_language_of():
    assert [fim.language_of(p) for p in ("a/b.py", "X.JAVA", "m.ts", "m.js", "a.cs", "g.go", "l.rs", "v.cpp",
                                         "h.hpp", "README", "dir.py/file", ".py", "x.pyc")] == [
        "python", "java", "typescript", "javascript", "c_sharp", "go", "rust", "cpp", "cpp", None, None, "python",
        None]


def test_select_context(tokenizer):
    files = {"target.py": "def load(path): return parse(read(path))\n",
             "io.py": "def read(path): return open(path).read()\ndef load(path): pass\n",
             "parse.py": "def parse(text): return text.split()\n",
             "other.py": "x = 1\n",
             "big.py": "def load(path): return parse(read(path))\n" + "# filler line\n" * 400}
    context = fim.select_context(files, "target.py", budget_tokens=10_000, tokenizer=tokenizer)
    assert [p for p, _ in context] == ["parse.py", "io.py", "big.py"]  # least similar first
    assert all(files[p] == c for p, c in context)
    cost = {p: 1 + len(tokenizer.encode(f"{p}\n{c}\n")) for p, c in files.items()}
    budget = cost["io.py"] + cost["parse.py"]
    context = fim.select_context(files, "target.py", budget_tokens=budget, tokenizer=tokenizer)
    assert [p for p, _ in context] == ["parse.py", "io.py"]  # big.py is the most similar but does not fit
    assert fim.select_context(files, "target.py", budget_tokens=0, tokenizer=tokenizer) == []
    with pytest.raises(ValueError, match="target_path"):
        fim.select_context(files, "missing.py", budget_tokens=10, tokenizer=tokenizer)
