"""Annotation macros in C/C++ as blanks, for a parse that places more of a real header.

Headers decorate declarations with macros the parser cannot expand: `TORCH_API at::Tensor f();`,
`extern int add (int, int) __THROW __nonnull ((1));`, `__BEGIN_DECLS`. tree-sitter then reports errors
around nearly every declaration. `blank_macros` finds macro-shaped names (ALL_CAPS with at least two
characters, or starting with `__`) on the lines of the parse's ERROR and MISSING nodes (and the line before each) and tries, one name at a
time, to replace every use of it (with the parenthesised arguments that directly follow a use) by spaces.
Uses on preprocessor lines (`#define TORCH_API ...`) stay. A name stays blanked only when the reparse
has fewer bytes in ERROR nodes (plus one per MISSING node); names are tried in order of first use,
at most MAX_TRIES reparses per text.

Blanking keeps every byte offset (each blanked byte becomes a space, newlines are kept), so a node of
the blanked parse is a span of the original text, which still holds the macros.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_TRIES = 24
_NAME = re.compile(rb"\b(?:__[A-Za-z0-9_]+|[A-Z][A-Z0-9_]+)\b")
_COMMENT_OR_BLANK = re.compile(rb"[ \t]*(?:$|//|/\*|\*)")  # a blank line or one of a comment's lines
_KEEP = frozenset({b"NULL", b"FILE", b"EOF", b"TRUE", b"FALSE"})  # names that are values or types, not annotations


def error_cost(spans: list[tuple[int, int]]) -> int:
    """Bytes in the problem spans, plus one per span (so a MISSING node, an empty span, counts)."""
    return sum(end - start + 1 for start, end in spans)


def _with_arguments(data: bytes, end: int) -> int:
    """End of the balanced parenthesised group right after `end` (spaces allowed before it), else `end`."""
    at = end
    while at < len(data) and data[at] in b" \t":
        at += 1
    if at >= len(data) or data[at] != ord("("):
        return end
    depth = 0
    for i in range(at, len(data)):
        depth += {ord("("): 1, ord(")"): -1}.get(data[i], 0)
        if data[i] == ord("\n") and depth > 4:
            return end
        if depth == 0:
            return i + 1
    return end


def _blank(data: bytearray, name: bytes) -> None:
    """Blank every use of `name` outside preprocessor directive lines, with its arguments."""
    for match in re.finditer(rb"\b" + re.escape(name) + rb"\b", bytes(data)):
        if data[data.rfind(b"\n", 0, match.start()) + 1:match.start()].lstrip().startswith(b"#"):
            continue
        end = _with_arguments(data, match.end())
        data[match.start():end] = bytes(b if b == ord("\n") else ord(" ") for b in data[match.start():end])


def _lines_of(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Per span, the byte range of its lines, and of the line of code before it (`__BEGIN_DECLS` or
    `__NV_SILENCE_DEPRECATION_END` breaks the next declaration across blank and comment lines)."""
    lines = []
    for start, end in spans:
        first = at = data.rfind(b"\n", 0, start) + 1
        while at:
            line_end, at = at - 1, data.rfind(b"\n", 0, at - 1) + 1
            if not _COMMENT_OR_BLANK.match(data, at, line_end):
                lines.append((at, line_end))
                break
        lines.append((first, len(data) if (e := data.find(b"\n", end)) < 0 else e))
    return lines


def blank_macros(data: bytes, problems: Callable[[bytes], list[tuple[int, int]]]) -> bytes:
    """`data` with the annotation macros that hinder the parse blanked (module docstring); `problems`
    parses bytes and returns the problem spans (start, end) of that parse."""
    spans = problems(data)
    cost = error_cost(spans)
    tried: set[bytes] = set()
    tries = 0
    while spans and tries < MAX_TRIES:
        names = [m.group() for start, end in _lines_of(data, spans) for m in _NAME.finditer(data, start, end)]
        names = [n for n in dict.fromkeys(names) if n not in tried and n not in _KEEP]
        if not names:
            break
        for name in names[:MAX_TRIES - tries]:
            tried.add(name)
            tries += 1
            candidate = bytearray(data)
            _blank(candidate, name)
            new_spans = problems(bytes(candidate))
            new_cost = error_cost(new_spans)
            if new_cost < cost:
                data, spans, cost = bytes(candidate), new_spans, new_cost
                break  # problem lines moved: collect names again
        else:
            break
    return data
