"""Conditional compilation as blanks, for a parse of one configuration of a C# or C/C++ file.

Preprocessor directives are lines, not syntax: `#if FEATURE` / `#endif` may sit inside a base list, an
expression or between `if (...)` and its block (serilog's C#, CUDA's headers), where the grammars report
errors. `blank_conditionals` gives the text a compiler sees when the first branch of every conditional is
taken: each directive line (with its `\\` continuation lines) and each `#elif` / `#else` branch up to its
`#endif` becomes spaces. Blanking keeps every byte offset (newlines are kept), so a node of the blanked
parse is a span of the original text.

Directives blanked: C# all of them (`#if #elif #else #endif #region #endregion #define #undef #pragma
#nullable #line #error #warning`); C/C++ the conditionals (`#if #ifdef #ifndef #elif #elifdef #elifndef
#else #endif`) and `#pragma`; `#define` and `#include` stay, the grammar places them.
Conditionals that do not balance (an `#endif` without its `#if`, an `#if` left open at the end, as in a
truncated file) give None: that text has no configuration to parse.
"""

from __future__ import annotations

import re

_CONDITIONALS = frozenset({b"if", b"ifdef", b"ifndef", b"elif", b"elifdef", b"elifndef", b"else", b"endif"})
BLANKED: dict[str, frozenset[bytes]] = {
    "c_sharp": _CONDITIONALS | {b"region", b"endregion", b"define", b"undef", b"pragma", b"nullable", b"line",
                                b"error", b"warning"},
    "cpp": _CONDITIONALS | {b"pragma"},
}
_DIRECTIVE = re.compile(rb"[ \t]*#[ \t]*([a-z]+)")


def blank_conditionals(data: bytes, language: str) -> bytes | None:
    """`data` with the directive lines of `language` (BLANKED) and every `#elif` / `#else` branch blanked;
    None when the conditionals do not balance. A language without entry in BLANKED: `data` unchanged."""
    names = BLANKED.get(language)
    if names is None:
        return data
    out = bytearray(data)
    skipping: list[bool] = []  # per open conditional: inside one of its #elif / #else branches
    continued = False  # the previous line was a blanked directive ending in a backslash
    at = 0
    for line in data.split(b"\n"):
        end = at + len(line)
        match = None if continued else _DIRECTIVE.match(line)
        name = match.group(1) if match else None
        if name in (b"if", b"ifdef", b"ifndef"):
            skipping.append(False)
        elif name in (b"elif", b"elifdef", b"elifndef", b"else", b"endif") and not skipping:
            return None
        elif name in (b"elif", b"elifdef", b"elifndef", b"else"):
            skipping[-1] = True
        blank = continued or name in names
        if blank or any(skipping):
            out[at:end] = b" " * len(line)
        if name == b"endif":
            skipping.pop()
        continued = blank and line.rstrip(b"\r").endswith(b"\\")
        at = end + 1
    return bytes(out) if not skipping else None
