"""Real Python functions and planted clones of them, for the embedding-dedup measurement.

    pool = function_pool()                       # distinct functions of 2-40 lines, stdlib + installed packages
    renamed_clone(text, rng)  -> str | None      # Type-2: defined name, parameters, assigned locals renamed
    edited_clone(text, rng)   -> str | None      # renamed, two adjacent statements swapped and/or a literal changed

Functions are whole `def`s (methods dedented) from the standard library and the packages installed in
this environment (tests, idlelib and vendored copies left out), distinct texts, walked in sorted order. The
renamer works on the function's AST positions, so strings, comments, attributes and keyword-argument names
are never touched; None when the function binds nothing to rename (or, for edited_clone, has nothing to
edit).
"""

from __future__ import annotations

import ast
import io
import random
import sysconfig
import textwrap
import tokenize
import warnings
from pathlib import Path

WORDS = ("alpha", "beta", "gamma", "delta", "item", "value", "node", "entry", "result", "target", "source",
         "left", "right", "first", "second", "count", "total", "buf", "data", "obj", "thing", "elem", "acc")
SKIPPED = {"test", "tests", "idlelib", "_vendor", "vendor", "site-packages"}


def _functions_of(path: Path) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
    except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
        return []
    lines, out = source.splitlines(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and 2 <= node.end_lineno - node.lineno + 1 <= 40 \
                and not node.decorator_list:
            text = textwrap.dedent("\n".join(lines[node.lineno - 1:node.end_lineno])) + "\n"
            if _parses(text):
                out.append(text)
    return out


def function_pool() -> list[str]:
    """Every distinct function of 2-40 lines (no decorators) of the stdlib and the installed packages."""
    paths = sysconfig.get_paths()
    seen: set[str] = set()
    pool = []
    for root in (Path(paths["stdlib"]), Path(paths["purelib"])):
        for path in sorted(root.rglob("*.py")):
            if any(part in SKIPPED for part in path.relative_to(root).parts[:-1]):
                continue
            for text in _functions_of(path):
                if text not in seen:
                    seen.add(text)
                    pool.append(text)
    return pool


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:  # a docstring indented less than its method defeats dedent
        return False
    return True


def _bound_positions(text: str) -> tuple[set[str], list[tuple[int, int, str]]]:
    """(names bound by the function, (line, byte column, name) of every occurrence of those names as a
    variable, parameter or the def's name)."""
    func = ast.parse(text).body[0]
    bound = {func.name} | {a.arg for a in ast.walk(func) if isinstance(a, ast.arg)} | {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound -= {"self", "cls"}
    if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(func)):
        return set(), []
    spots = [(n.lineno, n.col_offset, n.id) for n in ast.walk(func) if isinstance(n, ast.Name) and n.id in bound]
    spots += [(a.lineno, a.col_offset, a.arg) for a in ast.walk(func) if isinstance(a, ast.arg) and a.arg in bound]
    def_line = text.splitlines()[func.lineno - 1].encode()
    spots.append((func.lineno, def_line.index(b"def ") + 4, func.name))
    return bound, spots


def _replace_spots(text: str, spots: list[tuple[int, int, str]], mapping: dict[str, str]) -> str:
    lines = [line.encode() for line in text.splitlines(keepends=True)]
    for line, col, name in sorted(set(spots), reverse=True):
        raw = lines[line - 1]
        assert raw[col:col + len(name.encode())] == name.encode(), (raw, col, name)
        lines[line - 1] = raw[:col] + mapping[name].encode() + raw[col + len(name.encode()):]
    return b"".join(lines).decode()


def renamed_clone(text: str, rng: random.Random) -> str | None:
    """The function with its name, parameters and assigned locals renamed consistently (random words with
    numbers), nothing else changed; None when it binds nothing but self/cls."""
    bound, spots = _bound_positions(text)
    if not bound:
        return None
    words = rng.sample(WORDS, len(WORDS))
    mapping = {name: f"{words[i % len(words)]}{i // len(words) or ''}_{rng.randrange(100)}"
               for i, name in enumerate(sorted(bound))}
    return _replace_spots(text, spots, mapping)


def _swap_adjacent(text: str, rng: random.Random) -> str | None:
    """Two adjacent one-line simple statements of one body swapped (a random such pair), or None."""
    func = ast.parse(text).body[0]
    simple = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)
    pairs = [(a, b) for node in ast.walk(func) for body in (getattr(node, "body", None), getattr(node, "orelse", None))
             if isinstance(body, list) for a, b in zip(body, body[1:])
             if isinstance(a, simple) and isinstance(b, simple) and a.lineno == a.end_lineno
             and b.lineno == b.end_lineno == a.lineno + 1
             and not (isinstance(a, ast.Expr) and isinstance(a.value, ast.Constant))]
    if not pairs:
        return None
    a, _ = rng.choice(pairs)
    lines = text.splitlines(keepends=True)
    lines[a.lineno - 1], lines[a.lineno] = lines[a.lineno], lines[a.lineno - 1]
    return "".join(lines)


def _change_literal(text: str, rng: random.Random) -> str | None:
    """One number literal incremented or one (non-docstring) string literal given an extra word, or None."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    literals = [i for i, t in enumerate(tokens) if t.type == tokenize.NUMBER and t.string.isdigit()
                or t.type == tokenize.STRING and not t.string.startswith(('"""', "'''")) and len(t.string) >= 3
                and t.string[-1] in "'\"" and t.string[0] in "'\""]
    if not literals:
        return None
    i = rng.choice(literals)
    old = tokens[i]
    new = str(int(old.string) + 1) if old.type == tokenize.NUMBER else old.string[:-1] + " new" + old.string[-1]
    lines = text.splitlines(keepends=True)
    (row, start), (_, end) = old.start, old.end
    lines[row - 1] = lines[row - 1][:start] + new + lines[row - 1][end:]
    return "".join(lines)


def edited_clone(text: str, rng: random.Random) -> str | None:
    """renamed_clone plus (when the function allows) two adjacent statements swapped and a literal changed;
    None unless it renames something and makes at least one of the two edits."""
    renamed = renamed_clone(text, rng)
    if renamed is None:
        return None
    edited = renamed
    for edit in (_swap_adjacent, _change_literal):
        changed = edit(edited, rng)
        edited = changed if changed is not None and _parses(changed) else edited
    return edited if edited != renamed else None
