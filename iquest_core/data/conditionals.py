"""Conditional compilation as blanks, for a parse of one configuration of a C# or C/C++ file.

Preprocessor directives are lines, not syntax: `#if FEATURE` / `#endif` may sit inside a base list, an
expression or between `if (...)` and its block (serilog's C#, CUDA's headers), where the grammars report
errors. `blank_conditionals` gives the text a compiler sees in one configuration: taken="first", the
first branch of every conditional (every symbol defined); taken="last", its `#else` branch or none (no
symbol defined). Each directive line (with its `\\` continuation lines) and each branch not taken
becomes spaces. Blanking keeps every byte offset (newlines are kept), so a node of the blanked
parse is a span of the original text.

Directives blanked: C# all of them (`#if #elif #else #endif #region #endregion #define #undef #pragma
#nullable #line #error #warning`); C/C++ the conditionals (`#if #ifdef #ifndef #elif #elifdef #elifndef
#else #endif`) and `#pragma`; `#define` and `#include` stay, the grammar places them.
Conditionals that do not balance (an `#endif` without its `#if`, an `#if` left open at the end, as in a
truncated file) give None: that text has no configuration to parse.
"""

from __future__ import annotations

import re

_OPENERS = frozenset({b"if", b"ifdef", b"ifndef"})
_BRANCHES = frozenset({b"elif", b"elifdef", b"elifndef", b"else"})
_CONDITIONALS = _OPENERS | _BRANCHES | {b"endif"}
TAKEN = ("first", "last")
BLANKED: dict[str, frozenset[bytes]] = {
    "c_sharp": _CONDITIONALS | {b"region", b"endregion", b"define", b"undef", b"pragma", b"nullable", b"line",
                                b"error", b"warning"},
    "cpp": _CONDITIONALS | {b"pragma"},
}
_DIRECTIVE = re.compile(rb"[ \t]*#[ \t]*([a-z]+)")


def blank_conditionals(data: bytes, language: str, *, taken: str = "first") -> bytes | None:
    """`data` with the directive lines of `language` (BLANKED) and every branch not taken blanked; None
    when the conditionals do not balance. taken="first": each conditional's first branch; "last": its
    `#else` branch, or none. A language without entry in BLANKED: `data` unchanged."""
    if taken not in TAKEN:
        raise ValueError(f"taken: expected one of {TAKEN}, got {taken!r}")
    names = BLANKED.get(language)
    if names is None:
        return data
    lines = data.split(b"\n")
    blank: set[int] = set()  # line numbers
    conditionals: list[list[tuple[int, bool]]] = []  # per open conditional: (line, is #else) of each branch
    continued = False  # the previous line was a blanked directive ending in a backslash
    for number, line in enumerate(lines):
        match = None if continued else _DIRECTIVE.match(line)
        name = match.group(1) if match else None
        if name in _OPENERS:
            conditionals.append([(number, False)])
        elif name in _BRANCHES or name == b"endif":
            if not conditionals:
                return None
            if name == b"endif":
                blank.update(_not_taken(conditionals.pop(), number, taken))
            else:
                conditionals[-1].append((number, name == b"else"))
        directive = continued or name in names
        if directive:
            blank.add(number)
        continued = directive and line.rstrip(b"\r").endswith(b"\\")
    if conditionals:
        return None
    return b"\n".join(b" " * len(line) if number in blank else line for number, line in enumerate(lines))


def _not_taken(branches: list[tuple[int, bool]], endif: int, taken: str) -> list[int]:
    """The line numbers of a conditional's branches other than the taken one (directive lines included)."""
    bounds = [start for start, _ in branches] + [endif]
    chosen = 0 if taken == "first" else len(branches) - 1 if branches[-1][1] else None
    return [n for k in range(len(branches)) if k != chosen for n in range(bounds[k], bounds[k + 1])]
