"""Fill-in-the-middle examples at file and repository level.

    split = fim.split(text, "statement", random.Random(0), language="python")   # FimSplit or None
    fim.format_file(split)
        <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}<|im_end|>
    fim.format_repo(repo, context, target_path, split)
        <|repo_name|>{repo}\\n  then per context file  <|file_sep|>{path}\\n{content}\\n
        then  <|file_sep|>{target_path}\\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}<|im_end|>

Modes: "char" (two random character boundaries), "line" (one to three whole lines starting at a random
non-blank line), and the syntax levels "expression", "statement", "function": the middle is exactly the
text of one tree-sitter node of that level (syntax.NODE_TYPES and syntax.PATTERNS), chosen uniformly
among the level's nodes that contain no ERROR or MISSING node and touch none of the bytes the parser
could not place (Parsed.nodes_clear_of_errors), so a file with parse errors still gives splits away from
them; None when no such node exists. C/C++ is parsed with its annotation macros blanked
(syntax.parse(..., blank_macros=True); `TORCH_API`, `__THROW`, `__BEGIN_DECLS`): the node is one of that
parse, the middle is the original text of its span (macros included). In C/C++ the function level is a
function definition, a prototype (a declaration or class member declaring a named function) or a
function-like macro definition (`#define F(x) ...`), since headers mostly declare; the statement level
also holds a header's declarations (typedefs, class members, using/alias declarations), the expression
level a macro's replacement text (syntax.PATTERNS). Always prefix + middle + suffix
== text and the middle is non-empty.

The templates are built from (is_special, string) parts (`file_parts`, `repo_parts`): `render` joins
them and reports where the special tokens are, and the tokenizer turns special parts into their ids, so
a literal "<|im_end|>" inside a source file stays text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from iquest_core.data import syntax
from iquest_core.data.syntax import LANGUAGES, language_of

__all__ = ["LANGUAGES", "MODES", "ContextIndex", "FimSplit", "file_parts", "format_file", "format_repo",
           "language_of", "render", "repo_parts", "select_context", "split"]

HEURISTIC_MODES = ("char", "line")
MODES: tuple[str, ...] = HEURISTIC_MODES + syntax.LEVELS
MAX_LINES = 3


@dataclass(frozen=True)
class FimSplit:
    """A text cut in three: prefix + middle + suffix is the text (`text`); the model sees prefix and suffix
    and learns to produce the middle."""
    prefix: str
    middle: str
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.middle + self.suffix


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES, else ValueError naming it."""
    if mode not in MODES:
        raise ValueError(f"mode: unknown mode {mode!r}; expected one of {MODES}")
    return mode


def split(text: str, mode: str, rng: random.Random, language: str | None = None) -> FimSplit | None:
    """Cut `text` into prefix, middle, suffix by `mode` (see the module docstring); `language` (one of
    LANGUAGES) is required by the syntax modes and checked whenever given."""
    check_mode(mode)
    if not isinstance(text, str):
        raise ValueError(f"text: expected a str, got {type(text).__name__}")
    if language is not None:
        syntax.check_language(language)
    if mode == "char":
        bounds = _char_bounds(text, rng)
    elif mode == "line":
        bounds = _line_bounds(text, rng)
    else:
        if language is None:
            raise ValueError(f"language: the syntax mode {mode!r} needs a language, got None")
        bounds = _node_bounds(syntax.parse(text, language, blank_macros=True), mode, rng)
    if bounds is None:
        return None
    a, b = bounds
    return FimSplit(text[:a], text[a:b], text[b:])


def _char_bounds(text: str, rng: random.Random) -> tuple[int, int] | None:
    if not text:
        return None
    a, b = sorted(rng.sample(range(len(text) + 1), 2))
    return a, b


def _line_bounds(text: str, rng: random.Random) -> tuple[int, int] | None:
    if text.isspace() or not text:
        return None
    lines = text.split("\n")
    for _ in range(64):  # rejection sampling keeps the pass over lines in C; uniform over non-blank lines
        first = rng.randrange(len(lines))
        if not lines[first].isspace() and lines[first]:
            break
    else:
        first = rng.choice([i for i, line in enumerate(lines) if line and not line.isspace()])
    count = rng.randint(1, min(MAX_LINES, len(lines) - first))
    start = sum(map(len, lines[:first])) + first
    end = start + sum(map(len, lines[first:first + count])) + count
    return start, min(end, len(text))


def _node_bounds(parsed: syntax.Parsed, level: str, rng: random.Random) -> tuple[int, int] | None:
    nodes = parsed.nodes_clear_of_errors(level)
    while nodes:
        node = nodes[rng.randrange(len(nodes))]
        if node.end_byte > node.start_byte:
            return parsed.char_offset(node.start_byte), parsed.char_offset(node.end_byte)
        nodes = [n for n in nodes if n.end_byte > n.start_byte]  # never the empty one again
    return None


# --- templates -------------------------------------------------------------------------------------

Parts = list[tuple[bool, str]]


def file_parts(split: FimSplit) -> Parts:
    """The file-level template as (is_special, string) parts."""
    return [(True, "<|fim_prefix|>"), (False, split.prefix), (True, "<|fim_suffix|>"), (False, split.suffix),
            (True, "<|fim_middle|>"), (False, split.middle), (True, "<|im_end|>")]


def repo_parts(repo: str, context: Sequence[tuple[str, str]], target_path: str, split: FimSplit) -> Parts:
    """The repository-level template as (is_special, string) parts."""
    parts: Parts = [(True, "<|repo_name|>"), (False, f"{repo}\n")]
    for path, content in context:
        parts += [(True, "<|file_sep|>"), (False, f"{path}\n{content}\n")]
    return parts + [(True, "<|file_sep|>"), (False, f"{target_path}\n")] + file_parts(split)


def render(parts: Parts) -> tuple[str, list[tuple[int, int]]]:
    """The template's text and the (start, end) str spans of its special tokens."""
    pieces, spans, at = [], [], 0
    for special, piece in parts:
        if special:
            spans.append((at, at + len(piece)))
        pieces.append(piece)
        at += len(piece)
    return "".join(pieces), spans


def format_file(split: FimSplit) -> str:
    """The file-level FIM text of `split` (template in the module docstring)."""
    return render(file_parts(split))[0]


def format_repo(repo: str, context: Sequence[tuple[str, str]], target_path: str, split: FimSplit) -> str:
    """The repository-level FIM text: `context` (path, content) files, then `split` of target_path."""
    return render(repo_parts(repo, context, target_path, split))[0]


# --- repository context ----------------------------------------------------------------------------

class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


_WORD = re.compile(r"\w+")
MAX_CANDIDATES = 64  # most similar files whose token cost is measured per target


class ContextIndex:
    """A repository's files with their identifier sets and (once measured) token costs, for picking the
    context files of many targets.

    Similarity is the Jaccard index of the files' identifier (\\w+) sets; files sharing no identifier
    with the target are never context. A file's cost is its template part, `<|file_sep|>{path}\\n{content}\\n`,
    in `tokenizer` tokens."""

    def __init__(self, files: dict[str, str], tokenizer: Encoder) -> None:
        self.files = files
        self.tokenizer = tokenizer
        self._words = {path: frozenset(_WORD.findall(content)) for path, content in files.items()}
        self._costs: dict[str, int] = {}

    def cost(self, path: str) -> int:
        if path not in self._costs:
            self._costs[path] = 1 + len(self.tokenizer.encode(f"{path}\n{self.files[path]}\n"))
        return self._costs[path]

    def select(self, target_path: str, *, budget_tokens: int) -> list[tuple[str, str]]:
        """Of the MAX_CANDIDATES files most similar to the target (never the target itself), those that fit
        `budget_tokens` together, taken greedily from the most similar; returned least similar first, so
        the most similar file sits next to the hole."""
        if target_path not in self.files:
            raise ValueError(f"target_path: {target_path!r} is not one of the repository's files")
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens: expected >= 0, got {budget_tokens}")
        target = self._words[target_path]
        scored = []
        for path, words in self._words.items():
            if path != target_path and target and words:
                common = len(target & words)
                if common:
                    scored.append((-common / (len(target) + len(words) - common), path))
        chosen, left = [], budget_tokens
        for _, path in sorted(scored)[:MAX_CANDIDATES]:
            if self.cost(path) <= left:
                chosen.append((path, self.files[path]))
                left -= self.cost(path)
        return chosen[::-1]


def select_context(files: dict[str, str], target_path: str, *, budget_tokens: int,
                   tokenizer: Encoder) -> list[tuple[str, str]]:
    """The repository's files most similar to the target within the budget (see ContextIndex.select)."""
    return ContextIndex(files, tokenizer).select(target_path, budget_tokens=budget_tokens)
