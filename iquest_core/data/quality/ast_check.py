"""AST validation of code: in whole files, and in code blocks found in text documents.

    blocks = code_blocks(text)          # fenced (``` / ~~~), indented (4 spaces / tab after a blank line),
                                        # HTML <pre> / <code> (entities decoded): CodeBlock(kind, start, end, code)
    check = validate(code)              # Validation(language, error_share, definitions, damage, valid)
    check = validate(code, "python")    # parse as one language only

The language is identified by parsing with each of the 8 grammars (syntax.LANGUAGES): the one with the
smallest share of ERROR/MISSING nodes wins, ties going to more definitions, then to LANGUAGES' order.
`definitions` counts function-level nodes (syntax.NODE_TYPES[...]["function"]) plus class-like ones.
Damage is named when the grammars cannot see it: "line_numbered" (most lines start with a line number)
and "html_escaped" (an entity such as &lt; &gt; &amp; &quot; &#NN; outside the string literals, regular
expressions, comments and JSX character references of the chosen language's parse: Javadoc
and XML doc comments, HTML strings and JSX hold entities in real code). Truncation and interleaved prose
are left to the parse: a cut that drops a closing delimiter, or a line of prose among statements, leaves
ERROR or MISSING nodes in every grammar. A missing final newline is not damage (real files often lack one).
C/C++ or C# identified with a parse that is not clean is parsed again preprocessed
(syntax.parse(..., blank_macros=True): the configuration of its conditional compilation that takes every
first branch, for `#if X` inside a base list, an expression or an if statement; then, C/C++, with its
annotation macros `TORCH_API`, `__THROW`, `__BEGIN_DECLS` blanked); that parse is kept when its error
share is lower, and its error share is then the larger of the two configurations' (every first branch,
every `#else` branch or none), so damage inside a branch one configuration leaves out still counts.
Preprocessing only replaces directive lines, the branches not taken and macro-shaped names (with their
argument lists) by spaces, and gives up on conditionals that do not balance, so a dropped closing
delimiter or a line of prose still leaves ERROR or MISSING nodes.
Valid: no damage and error_share <= max_error_share.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from iquest_core.data import syntax

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<code>.*?)"
                    r"^(?P=indent)(?P=fence)[ \t]*$", re.M | re.S)
_HTML = re.compile(r"<pre\b[^>]*>\s*(?:<code\b[^>]*>)?(?P<pre>.*?)(?:</code>\s*)?</pre>|<code\b[^>]*>(?P<code>.*?)</code>",
                   re.S | re.I)
_TAG = re.compile(r"<[^>\n]+>")
_INDENTED = re.compile(r"(?:(?<=\n\n)|\A)(?P<code>(?:(?: {4}|\t)[^\n]*\n|[ \t]*\n)*(?: {4}|\t)[^\n]*(?:\n|\Z))")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|apos|nbsp|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
_NUMBERED = re.compile(r"^\s*\d{1,6}(?:[ \t]*[:|.)]|\t| {2,})")
_LITERALS = ("string", "regex", "comment", "html_character_reference")
_CLASSES = ("class_definition", "class_declaration", "class_specifier", "struct_specifier", "struct_item",
            "interface_declaration", "enum_declaration", "enum_item", "trait_item", "impl_item", "type_declaration",
            "struct_declaration", "record_declaration", "namespace_definition")

MIN_BLOCK_CHARS = 20


@dataclass(frozen=True)
class CodeBlock:
    kind: str        # "fenced", "indented", "html"
    start: int       # str offsets of the block (markup included) in the text
    end: int
    code: str        # the code itself (fence lines and common indentation removed, HTML entities decoded)
    info: str = ""   # a fence's info string ("python"), else ""


@dataclass(frozen=True)
class Validation:
    language: str | None
    error_share: float
    definitions: int
    damage: str | None
    valid: bool


def code_blocks(text: str, *, min_chars: int = MIN_BLOCK_CHARS) -> list[CodeBlock]:
    """The code blocks of `text` with at least `min_chars` non-space characters, by start offset; an
    indented block inside a fenced or HTML one is not reported twice."""
    blocks: list[CodeBlock] = []
    for m in _FENCE.finditer(text):
        blocks.append(CodeBlock("fenced", m.start(), m.end(), _dedent(m.group("code"), len(m.group("indent"))),
                                m.group("info").strip()))
    for m in _HTML.finditer(text):
        body = m.group("pre") if m.group("pre") is not None else m.group("code")
        blocks.append(CodeBlock("html", m.start(), m.end(), html.unescape(_TAG.sub("", body))))
    taken = [(b.start, b.end) for b in blocks]
    for m in _INDENTED.finditer(text):
        if not any(s <= m.start() < e for s, e in taken):
            blocks.append(CodeBlock("indented", m.start("code"), m.end("code"), _dedent(m.group("code"), None)))
    return sorted((b for b in blocks if len("".join(b.code.split())) >= min_chars), key=lambda b: b.start)


def _dedent(code: str, width: int | None) -> str:
    lines = code.split("\n")
    if width is None:
        width = min((len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()), default=0)
    if width == 0:
        return code
    return "\n".join(line[width:] if line[:width].isspace() else line.lstrip(" \t") for line in lines)


def line_numbered(code: str) -> bool:
    """Whether most (> 60%) of at least 3 non-blank lines start with a line number and a gutter."""
    lines = [line for line in code.split("\n") if line.strip()]
    return len(lines) >= 3 and sum(bool(_NUMBERED.match(line)) for line in lines) / len(lines) > 0.6


def escaped_outside_literals(parsed: syntax.Parsed) -> bool:
    """Whether an HTML entity of `parsed.text` lies outside its string literals, regular expressions,
    comments and JSX text (node types containing one of _LITERALS)."""
    data, at, last = parsed.text, 0, parsed.bom
    for m in _ENTITY.finditer(data, parsed.bom):
        at += len(data[last:m.start()].encode("utf-8"))
        last = m.start()
        node = parsed.tree.root_node.descendant_for_byte_range(at, at + 1)
        while node is not None and not any(kind in node.type for kind in _LITERALS):
            node = node.parent
        if node is None:
            return True
    return False


def definitions(parsed: syntax.Parsed) -> int:
    kinds = set(syntax.NODE_TYPES[parsed.language]["function"]) | set(_CLASSES)
    count, stack = 0, [parsed.tree.root_node]
    while stack:
        node = stack.pop()
        count += node.type in kinds
        stack.extend(node.named_children)
    return count


def validate(code: str, language: str | None = None, *, max_error_share: float = 0.0) -> Validation:
    """The validation of `code` (module docstring); `language` None identifies it among the 8 grammars
    (a grammar whose parse runs past syntax's parse budget is not a candidate; none within it: error_share
    1.0)."""
    if not 0.0 <= max_error_share <= 1.0:
        raise ValueError(f"max_error_share: expected a value in [0, 1], got {max_error_share!r}")
    languages = syntax.LANGUAGES if language is None else (syntax.check_language(language),)
    best = None
    for rank, name in enumerate(languages):
        parsed = syntax.parse(code, name)
        if parsed.tree is None:
            continue
        key = (parsed.error_share(), -definitions(parsed), rank)
        if best is None or key < best[0]:
            best = (key, parsed)
    if best is None:
        return Validation(languages[0] if language else None, 1.0, 0, None, False)
    (share, negative_defs, _), parsed = best
    if parsed.language in syntax.PREPROCESSED and share > max_error_share:
        blanked = syntax.parse(code, parsed.language, blank_macros=True)
        if blanked.error_share() < share:
            other = syntax.parse(code, parsed.language, blank_macros=True, taken="last")
            share, parsed, negative_defs = (max(blanked.error_share(), other.error_share()), blanked,
                                            -definitions(blanked))
    found = ("line_numbered" if line_numbered(code) else
             "html_escaped" if escaped_outside_literals(parsed) else None)
    valid = found is None and bool(code.strip()) and share <= max_error_share
    return Validation(parsed.language, share, -negative_defs, found, valid)
