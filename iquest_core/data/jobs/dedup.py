"""`iquest data dedup INPUT... --output kept.jsonl`: exact and near-duplicate removal.

Exact duplicates (same content) first, then near duplicates among the rest (shingle-set Jaccard >=
--threshold, MinHash-LSH candidates verified exactly, see iquest_core.data.dedup). From each group the
first document in input order is kept. The job is the `dedup` step (iquest_core.data.steps.near_dedup:
signatures per shard, band buckets and clusters in stages on disk) as a one-step pipeline, so memory is
bounded by a shard and the duplicates, not by the corpus. --removed lists every dropped document with
the one kept in its place.
"""

from __future__ import annotations

import argparse

from iquest_core.command_line import CommandParser
from iquest_core.data import dedup
from iquest_core.data.jobs import Summary, add_input_arguments, add_shard_argument, run_main, run_one_step
from iquest_core.data.steps.near_dedup import NearDedup


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data dedup", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    add_shard_argument(p)
    p.add_argument("--output", required=True, help="JSONL of the kept documents")
    p.add_argument("--removed", help="JSONL of the dropped documents (path, repo, kind, kept_path, kept_repo)")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold of near duplicates")
    p.add_argument("--ngram", type=int, default=5, help="tokens per shingle")
    p.add_argument("--seed", type=int, default=1, help="MinHash seed")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data dedup", parser(), run, argv)


def run(args: argparse.Namespace) -> Summary:
    dedup.lsh_params(args.threshold)  # validates the threshold before any work
    step = NearDedup(args.threshold, args.ngram, args.seed, str(args.removed) if args.removed else None)
    return run_one_step(args, step)
