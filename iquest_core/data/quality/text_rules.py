"""Heuristic text-quality rules with reason codes: Gopher quality and repetition (Rae et al. 2021, table
A1), C4 (Raffel et al. 2020) and FineWeb's line rules (Penedo et al. 2024), with their published
thresholds as defaults.

Each rule set is a function `(text, config) -> reason | None`: None keeps the document, a reason code
names the first rule it fails, checked in the order below (the order and codes are datatrove's, so
outcomes can be compared one to one). Words come from `config.words` (default `split_words`, a regex
approximation of spaCy's English tokenizer, which is datatrove's default; any callable can be plugged in).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_CHUNK = re.compile(r"\S+")
_AFFIX = r"\.\.\.|'s|n't|'re|'ve|'ll|'d|'m"
_EDGES = re.compile(r"^([\"'(\[{<«“‘*`_/=%$]*)(.*?)((?:" + _AFFIX + r"|[\"')\]}>»”’,;:!?.*`_/=%])*)$", re.S | re.I)
_SUFFIX_PARTS = re.compile(_AFFIX + "|.", re.S | re.I)
_INFIX = re.compile(r"((?<=[A-Za-z0-9])-(?=[A-Za-z])|(?<=[A-Za-z])/(?=[A-Za-z]))")
_ABBREVIATION = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_NEWLINES = re.compile(r"\n+")
_PARAGRAPHS = re.compile(r"\n{2,}")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")

# Characters counted as punctuation or symbols (a word made only of them is a "symbol word").
PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«´»–—’“”„…∶━►、。，．！？：；（）【】《》〈〉「」％＃＆＊＋－／＝＠＼＾＿｀｜～")
TERMINAL_PUNCTUATION = (".", "!", "?", "。", "！", "？", "．", "।", "॥", "؟", "۔", "։", "።", "‼", "‽", "⁇", "⁈", "⁉")
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


def split_words(text: str) -> list[str]:
    """Words, close to spaCy's English tokenizer: each whitespace-separated chunk loses its leading and
    trailing punctuation (one word per character; "...", "'s", "n't" and the like whole), a hyphen or slash
    between letters splits it, and an abbreviation keeps its final dot ("e.g.")."""
    words: list[str] = []
    for chunk in _CHUNK.findall(text):
        prefix, core, suffix = _EDGES.match(chunk).groups()
        words.extend(prefix)
        if core and suffix.startswith(".") and _ABBREVIATION.fullmatch(core):
            core, suffix = core + ".", suffix[1:]
        words.extend(part for part in _INFIX.split(core) if part)
        words.extend(_SUFFIX_PARTS.findall(suffix))
    return words


Words = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class GopherQuality:
    """Gopher's quality rules; a threshold of None switches its rule off."""
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    words: Words = field(default=split_words, compare=False)


@dataclass(frozen=True)
class GopherRepetition:
    """Gopher's repetition rules: duplicate lines/paragraphs (by count and by characters), the most
    frequent n-gram's character share, and the character share of repeated n-grams."""
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11),
                                                  (10, 0.10))
    words: Words = field(default=split_words, compare=False)


@dataclass(frozen=True)
class C4Quality:
    """C4's rules: lines are kept only when they end in terminal punctuation (not an ellipsis), have >=
    min_words_per_line words, no word over max_word_length, no "javascript", no policy phrase; the page
    is dropped for "lorem ipsum" or a curly bracket in a kept line, or fewer than min_sentences sentences
    in its kept lines."""
    min_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    remove_citations: bool = True


@dataclass(frozen=True)
class FineWebLines:
    """FineWeb's line rules over non-blank lines."""
    min_line_punct_ratio: float = 0.12
    max_short_line_ratio: float = 0.67
    short_line_length: int = 30
    max_char_dup_ratio: float = 0.01
    max_newline_word_ratio: float = 0.3
    words: Words = field(default=split_words, compare=False)


def gopher_quality(text: str, config: GopherQuality = GopherQuality()) -> str | None:
    words = config.words(text)
    content = [w for w in words if any(ch not in PUNCTUATION for ch in w)]
    c = config
    if c.min_doc_words and len(content) < c.min_doc_words:
        return "gopher_short_doc"
    if c.max_doc_words and len(content) > c.max_doc_words:
        return "gopher_long_doc"
    mean_length = sum(map(len, content)) / len(content) if content else 0.0
    if c.min_avg_word_length and mean_length < c.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if c.max_avg_word_length and mean_length > c.max_avg_word_length:
        return "gopher_above_avg_threshold"
    n_words = max(len(words), 1)
    if c.max_symbol_word_ratio and text.count("#") / n_words > c.max_symbol_word_ratio:
        return "gopher_too_many_hashes"
    if c.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines() or [""]
    bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines)
    if c.max_bullet_lines_ratio and bullets / len(lines) > c.max_bullet_lines_ratio:
        return "gopher_too_many_bullets"
    ellipses = sum(line.rstrip().endswith(("...", "…")) for line in lines)
    if c.max_ellipsis_lines_ratio and ellipses / len(lines) > c.max_ellipsis_lines_ratio:
        return "gopher_too_many_end_ellipsis"
    alpha = sum(any(ch.isalpha() for ch in w) for w in words)
    if c.min_alpha_words_ratio and alpha / n_words < c.min_alpha_words_ratio:
        return "gopher_below_alpha_threshold"
    if c.min_stop_words and len(STOP_WORDS.intersection(words)) < c.min_stop_words:
        return "gopher_enough_stop_words"
    return None


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(number of items equal to an earlier one, their total characters)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters of the most frequent word n-gram (joined by spaces) times its count; 0 without n-grams."""
    counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return len(gram) * count


def _repeated_ngram_chars(words: Sequence[str], n: int) -> int:
    """Characters (words joined without spaces) covered by n-grams seen before, scanning left to right and
    jumping past each repeat, so no character counts twice."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_repetition(text: str, config: GopherRepetition = GopherRepetition()) -> str | None:
    c = config
    if not text:
        return "empty"
    paragraphs = _PARAGRAPHS.split(text.strip())
    count, chars = _duplicates(paragraphs)
    if c.dup_para_frac and count / len(paragraphs) > c.dup_para_frac:
        return "dup_para_frac"
    if c.dup_para_char_frac and chars / len(text) > c.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = _NEWLINES.split(text)
    count, chars = _duplicates(lines)
    if c.dup_line_frac and count / len(lines) > c.dup_line_frac:
        return "dup_line_frac"
    if c.dup_line_char_frac and chars / len(text) > c.dup_line_char_frac:
        return "dup_line_char_frac"
    words = c.words(text)
    for n, limit in c.top_n_grams:
        if _top_ngram_chars(words, n) / len(text) > limit:
            return f"top_{n}_gram"
    for n, limit in c.dup_n_grams:
        if _repeated_ngram_chars(words, n) / len(text) > limit:
            return f"duplicated_{n}_n_grams"
    return None


def c4_lines(text: str, config: C4Quality = C4Quality(), *,
             sentences: Callable[[str], int] | None = None) -> tuple[str | None, list[str]]:
    """(reason or None, the lines C4 keeps). `sentences(line)` counts a line's sentences (default: runs
    of . ! ? followed by a space or the end, at least 1)."""
    count_sentences = sentences or (lambda line: max(len(_SENTENCE_END.findall(line)), 1))
    kept, n_sentences = [], 0
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if any(len(word) > config.max_word_length for word in words):
            continue
        if config.remove_citations:
            line = _CITATION.sub("", line)
        if not line.endswith(C4_END_PUNCTUATION) or line.endswith("..."):
            continue
        if len(words) < config.min_words_per_line:
            continue
        lower = line.lower()
        if "lorem ipsum" in lower:
            return "lorem_ipsum", []
        if "javascript" in lower:
            continue
        if "{" in line:
            return "curly_bracket", []
        if any(phrase in lower for phrase in C4_POLICY):
            continue
        n_sentences += count_sentences(line)
        kept.append(line)
    if n_sentences < config.min_sentences:
        return "too_few_sentences", kept
    return None, kept


def c4_quality(text: str, config: C4Quality = C4Quality()) -> str | None:
    return c4_lines(text, config)[0]


def fineweb_lines(text: str, config: FineWebLines = FineWebLines()) -> str | None:
    c = config
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "empty"
    if sum(line.endswith(TERMINAL_PUNCTUATION) for line in lines) / len(lines) < c.min_line_punct_ratio:
        return "line_punct_ratio"
    if sum(len(line) <= c.short_line_length for line in lines) / len(lines) > c.max_short_line_ratio:
        return "short_line_ratio"
    if _duplicates(lines)[1] / max(len(text.replace("\n", "")), 1) > c.max_char_dup_ratio:
        return "char_dup_ratio"
    if text.count("\n") / max(len(c.words(text)), 1) > c.max_newline_word_ratio:
        return "list_ratio"
    return None


TEXT_RULES: dict[str, tuple[Callable[..., str | None], type]] = {
    "gopher_quality": (gopher_quality, GopherQuality),
    "gopher_repetition": (gopher_repetition, GopherRepetition),
    "c4": (c4_quality, C4Quality),
    "fineweb": (fineweb_lines, FineWebLines),
}
