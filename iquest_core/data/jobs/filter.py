"""`iquest data filter INPUT... --output OUT.jsonl [--max-error-share 0.0]`: syntax validity filter.

Files in one of syntax.LANGUAGES (by extension) are parsed with tree-sitter; a file whose share of
ERROR/MISSING nodes (syntax.Parsed.error_share) exceeds --max-error-share is dropped (the default 0
drops every file that does not parse cleanly). Files in other languages pass unchecked, counted.
Output records {"path", "content", "repo"} in input order, readable by every data job.
"""

from __future__ import annotations

import argparse
import functools
from collections import Counter

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl
from iquest_core.data.engine import chunks, map_shards
from iquest_core.data.jobs import Summary, add_input_arguments, load_documents, run_main, unit_interval
from iquest_core.data.sources import Document, Skipped
from iquest_core.data.steps.code import syntax_verdict

DOCS_PER_SHARD = 256


def verdict(doc: Document, max_error_share: float) -> str:
    """"kept:<language>", "dropped:<language>" or "kept:unchecked"."""
    return syntax_verdict(doc.path, doc.content, max_error_share)


def _shard(max_error_share: float, docs: list[Document]) -> list[str]:
    return [verdict(doc, max_error_share) for doc in docs]


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data filter", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    p.add_argument("--output", required=True, help="output .jsonl")
    p.add_argument("--max-error-share", type=unit_interval, default=0.0,
                   help="largest share of ERROR/MISSING nodes kept (0: only clean parses)")
    return p


def run(args: argparse.Namespace) -> Summary:
    skipped = Skipped()
    docs = load_documents(args.inputs, skipped)
    shards = chunks(docs, DOCS_PER_SHARD)
    verdicts = [v for part in map_shards(functools.partial(_shard, args.max_error_share), shards,
                                         engine=args.engine, workers=args.workers, address=args.address,
                                         desc="filter") for v in part]
    write_jsonl(args.output, ({"path": d.path, "content": d.content, "repo": d.repo}
                              for d, v in zip(docs, verdicts) if v.startswith("kept")))
    return Summary(len(docs), Counter(verdicts), skipped.counts)


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data filter", parser(), run, argv)
