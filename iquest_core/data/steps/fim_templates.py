"""fim: fill-in-the-middle templates, one document at a time or one shard's repositories at a time.

    [[steps]]
    name = "fim"
    fim_rate = 0.5              # share of documents cut; the others stay plain
    modes = ["line", "statement"]   # drawn uniformly (default: fim.MODES)
    repo_level_rate = 0.3       # share of FIM examples at repository level, context from the same shard
    context_tokens = 4096       # the context's budget, counted with `tokenizer` or in UTF-8 bytes
    tokenizer = "tokenizer/"

"content" becomes the template text, "special" its special-token spans, plus "mode", "level",
"language"; outcomes <level>:<mode> or plain:<reason> (rate, no_language, blank, no_node, parse_error).
Every document draws from its own generator (seed, repo, path), so the output does not depend on how
documents are spread over shards and workers. Repository-level context comes from the repository's code
files in the same shard, so the step holds one shard's documents.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from iquest_core.data import fim, syntax
from iquest_core.data.sources import Document
from iquest_core.data.steps import Doc, ShardContext, document_rng, register


@dataclass(frozen=True)
class Settings:
    fim_rate: float
    modes: tuple[str, ...]
    repo_level_rate: float
    context_tokens: int
    tokenizer: str | None
    seed: int


class Utf8Bytes:
    """Token counter without a tokenizer: one per UTF-8 byte (byte-level BPE never uses more)."""

    def encode(self, text: str) -> bytes:
        return text.encode("utf-8")


@functools.lru_cache(maxsize=2)
def context_counter(tokenizer: str | None):
    """What counts context tokens: the tokenizer directory's tokenizer, else UTF-8 bytes."""
    if tokenizer is None:
        return Utf8Bytes()
    from iquest_core.data.tokenizer import load_tokenizer
    return load_tokenizer(tokenizer)


def transform(doc: Document, settings: Settings, context: fim.ContextIndex | None) -> tuple[dict, str]:
    """The output record of one document and its outcome (e.g. "file:statement", "plain:no_node")."""
    rng = document_rng(settings.seed, {"repo": doc.repo, "path": doc.path})
    language = syntax.language_of(doc.path)
    record = {"text": doc.content, "special": [], "mode": "plain", "level": None, "language": language,
              "path": doc.path, "repo": doc.repo}
    if rng.random() >= settings.fim_rate:
        return record, "plain:rate"
    mode = rng.choice(settings.modes)
    if mode in syntax.LEVELS and language is None:
        return record, "plain:no_language"
    split = fim.split(doc.content, mode, rng, language=language)
    if split is None:
        if mode in fim.HEURISTIC_MODES:
            reason = "blank"
        else:
            reason = "no_node" if syntax.parse(doc.content, language).clean else "parse_error"  # none clear of errors
        return record, f"plain:{reason}"
    if context is not None and len(context.files) > 1 and rng.random() < settings.repo_level_rate:
        chosen = context.select(doc.path, budget_tokens=settings.context_tokens)
        text, special = fim.render(fim.repo_parts(doc.repo, chosen, doc.path, split))
        level = "repo"
    else:
        text, special = fim.render(fim.file_parts(split))
        level = "file"
    record.update(text=text, special=special, mode=mode, level=level)
    return record, f"{level}:{mode}"



@register
@dataclass
class Fim:
    name: ClassVar[str] = "fim"
    fim_rate: float = 0.5
    modes: list[str] | None = None
    repo_level_rate: float = 0.0
    context_tokens: int = 4096
    tokenizer: str | None = None

    def settings(self, seed: int) -> Settings:
        if self.context_tokens < 0:
            raise ValueError(f"context_tokens: expected >= 0, got {self.context_tokens}")
        modes = tuple(fim.check_mode(m) for m in (self.modes or fim.MODES))
        return Settings(self.fim_rate, modes, self.repo_level_rate, self.context_tokens, self.tokenizer, seed)

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        settings = self.settings(ctx.seed)
        docs = list(docs)
        contexts: dict[str | None, fim.ContextIndex] = {}
        if self.repo_level_rate > 0:
            code: dict[str, dict[str, str]] = {}
            for doc in docs:
                if doc.get("repo") is not None and syntax.language_of(doc["path"]) is not None:
                    code.setdefault(doc["repo"], {})[doc["path"]] = doc["content"]
            counter = context_counter(self.tokenizer)
            contexts = {repo: fim.ContextIndex(files, counter) for repo, files in code.items()}
        for doc in docs:
            special = tuple(tuple(span) for span in doc.get("special", ()))
            document = Document(doc["path"], doc["content"], doc.get("repo"), special)
            context = contexts.get(doc.get("repo"))
            record, outcome = transform(document, settings, context if context and doc["path"] in context.files
                                        else None)
            ctx.count(outcome)
            yield {**doc, "content": record.pop("text"), **record}
