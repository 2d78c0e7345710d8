"""`iquest data semdedup INPUT... --output kept.jsonl`: embedding dedup (SemDeDup).

Documents whose embeddings (all-MiniLM-L6-v2, or --model DIR) have cosine similarity >= --threshold
within a k-means cluster are duplicates; from each group the first document in input order is kept. Code
files are embedded with the names they bind replaced by their role (--raw: as they are), so clones whose
locals were renamed are found. Run it after `iquest data dedup` (exact and MinHash first), or put the
steps "dedup" then "semdedup" in one `iquest data run` pipeline. The job is the `semdedup` step
(iquest_core.data.steps.semdedup) as a one-step pipeline: embeddings per shard on disk (1.5 kB per
document), k-means on a seeded sample, pairs within each cluster.
"""

from __future__ import annotations

import argparse

from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, add_input_arguments, add_shard_argument, run_main, run_one_step
from iquest_core.data.steps.semdedup import SemDedup


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data semdedup", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    add_shard_argument(p)
    p.add_argument("--output", required=True, help="JSONL of the kept documents")
    p.add_argument("--threshold", type=float, default=SemDedup.threshold, help="cosine similarity of duplicates")
    p.add_argument("--raw", action="store_true", help="embed code as it is, not with bound names replaced by role")
    p.add_argument("--fit-sample", type=int, default=SemDedup.fit_sample, help="documents k-means is fitted on")
    p.add_argument("--model", help="a sentence-transformers folder (default: the installed all-MiniLM-L6-v2)")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data semdedup", parser(), run, argv)


def run(args: argparse.Namespace) -> Summary:
    step = SemDedup(threshold=args.threshold, canonical=not args.raw, fit_sample=args.fit_sample, model=args.model)
    return run_one_step(args, step)
