"""`iquest data fim INPUT... --output OUT.jsonl`: fill-in-the-middle training examples.

Each document is, with probability --fim-rate, cut by one mode drawn from --modes (fim.MODES) and
written as a FIM template; with probability --repo-level-rate (when its repository has other code
files) the template is the repository-level one, its context the most similar files of the repository
within --context-tokens (counted with --tokenizer, or in UTF-8 bytes, an upper bound on byte-level BPE
tokens, without one). The other documents, and those a syntax mode cannot cut (no language, no clean
parse, no node of the level), are written unchanged as mode "plain", the reason counted.

Output records: {"text", "special", "mode", "level", "language", "path", "repo"}; `special` lists the
[start, end) str spans of the template's special tokens, which `iquest data tokenize` turns into special
ids (a literal special-token string in the source stays text). Deterministic for a seed whatever the
worker count or engine: every document draws from its own generator (seed, repo, path).
"""

from __future__ import annotations

import argparse
import functools
from collections import Counter
from dataclasses import dataclass

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl
from iquest_core.data import fim, syntax
from iquest_core.data.engine import chunks, map_shards
from iquest_core.data.jobs import Summary, add_input_arguments, document_rng, load_documents, run_main, unit_interval
from iquest_core.data.sources import Document, Skipped

DOCS_PER_SHARD = 64


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
    rng = document_rng(settings.seed, doc)
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


def _shard(settings: Settings, shard: tuple[list[Document], dict[str, str] | None]) -> tuple[list[dict], Counter]:
    docs, files = shard
    context = fim.ContextIndex(files, context_counter(settings.tokenizer)) if files is not None else None
    records, outcomes = [], Counter()
    for doc in docs:
        record, outcome = transform(doc, settings, context if doc.path in (files or ()) else None)
        records.append(record)
        outcomes[outcome] += 1
    return records, outcomes


def make_shards(docs: list[Document], with_context: bool) -> list[tuple[list[Document], dict[str, str] | None]]:
    """Consecutive documents of one repository per shard, each with the repository's code files when
    repository-level examples are wanted."""
    by_repo: dict[str | None, list[Document]] = {}
    for doc in docs:
        by_repo.setdefault(doc.repo, []).append(doc)
    shards = []
    for repo, repo_docs in by_repo.items():
        files = None
        if with_context and repo is not None:
            files = {d.path: d.content for d in repo_docs if syntax.language_of(d.path) is not None}
        shards += [(list(part), files) for part in chunks(repo_docs, DOCS_PER_SHARD)]
    return shards


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data fim", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    p.add_argument("--output", required=True, help="output .jsonl")
    p.add_argument("--fim-rate", type=unit_interval, default=0.5, help="share of documents turned into FIM examples")
    p.add_argument("--modes", nargs="+", default=list(fim.MODES), help=f"drawn uniformly; of {fim.MODES}")
    p.add_argument("--repo-level-rate", type=unit_interval, default=0.0,
                   help="share of FIM examples at repository level (with similar files as context)")
    p.add_argument("--context-tokens", type=int, default=4096, help="token budget of the repository context")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory to count context tokens")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> Summary:
    if args.context_tokens < 0:
        raise ValueError(f"context_tokens: expected >= 0, got {args.context_tokens}")
    settings = Settings(args.fim_rate, tuple(fim.check_mode(m) for m in args.modes), args.repo_level_rate,
                        args.context_tokens, args.tokenizer, args.seed)
    skipped = Skipped()
    docs = load_documents(args.inputs, skipped)
    shards = make_shards(docs, settings.repo_level_rate > 0)
    results = map_shards(functools.partial(_shard, settings), shards, engine=args.engine, workers=args.workers,
                         address=args.address, desc="fim")
    summary = Summary(len(docs), sum((outcomes for _, outcomes in results), Counter()), skipped.counts)
    write_jsonl(args.output, (record for records, _ in results for record in records))
    return summary


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data fim", parser(), run, argv)
