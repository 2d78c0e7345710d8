"""The code-data steps of `iquest data`: syntax filter and decontamination (the FIM step is in
steps.fim_templates).

    syntax_filter  max_error_share        drops files in syntax.LANGUAGES whose parse has a larger share
                                          of ERROR/MISSING nodes; outcomes kept:<lang> / dropped:<lang> /
                                          kept:unchecked (other languages)
    decontam       benchmarks, ngram,     drops documents sharing an ngram-token run with a benchmark item
                   id_key, text_keys,     (iquest_core.data.decontam); outcomes kept / flagged; with
                   keep_flagged           keep_flagged they stay, their item ids in "decontam_matches"
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from iquest_core.data import syntax
from iquest_core.data.steps import Doc, ShardContext, register


def syntax_verdict(path: str, content: str, max_error_share: float) -> str:
    """"kept:<language>", "dropped:<language>" or "kept:unchecked"."""
    language = syntax.language_of(path)
    if language is None:
        return "kept:unchecked"
    share = syntax.parse(content, language).error_share()
    return f"{'kept' if share <= max_error_share else 'dropped'}:{language}"


@register
@dataclass
class SyntaxFilter:
    name: ClassVar[str] = "syntax_filter"
    max_error_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_error_share <= 1.0:
            raise ValueError(f"max_error_share: expected a value in [0, 1], got {self.max_error_share!r}")

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        for doc in docs:
            verdict = syntax_verdict(doc["path"], doc["content"], self.max_error_share)
            ctx.count(verdict)
            if verdict.startswith("kept"):
                yield doc


@functools.lru_cache(maxsize=4)
def benchmark_indexes(benchmarks: tuple[str, ...], ngram: int, id_key: str, text_keys: tuple[str, ...]):
    """The BenchmarkIndex of every benchmark ("humaneval" or a JSONL file), built once per process."""
    from iquest_core.data.decontam import BenchmarkIndex

    return [BenchmarkIndex.humaneval(ngram=ngram) if name == "humaneval" else
            BenchmarkIndex.from_jsonl(name, ngram=ngram, id_key=id_key, text_keys=text_keys) for name in benchmarks]


@register
@dataclass
class Decontam:
    name: ClassVar[str] = "decontam"
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval"])
    ngram: int = 13
    id_key: str = "task_id"
    text_keys: list[str] = field(default_factory=lambda: ["prompt", "canonical_solution"])

    keep_flagged: bool = False  # keep flagged documents, with the matched item ids in "decontam_matches"

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        indexes = benchmark_indexes(tuple(self.benchmarks), self.ngram, self.id_key, tuple(self.text_keys))
        for doc in docs:
            matches = sorted({m for index in indexes for m in index.matches(doc["content"])})
            if not matches:
                ctx.count("kept")
                yield doc
                continue
            ctx.count("flagged")
            if self.keep_flagged:
                yield {**doc, "decontam_matches": matches}
