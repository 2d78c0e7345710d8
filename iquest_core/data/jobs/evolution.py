"""`iquest data evolution REPO... --output triples.jsonl`: repository-evolution triples (R_start, P,
R_end) from each repository's first-parent history (iquest_core.data.evolution documents the start
window, the end search and what P covers). One shard per repository. With --tokenizer and
--budget-tokens each record also gets "text", the training text of evolution.format_triple. A path that
is not a git repository, an empty repository or a too-short history yields no triples and is counted.
"""

from __future__ import annotations

import argparse
from collections import Counter

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl
from iquest_core.data import evolution
from iquest_core.data.engine import add_engine_arguments, map_shards
from iquest_core.data.jobs import Summary, run_main


def repo_shard(shard: tuple[str, dict]) -> tuple[list[dict], dict[str, int]]:
    """(triple records, counts) of one repository; an unusable path is a count, not an error."""
    repo, options = shard
    options = dict(options)
    tokenizer_dir, budget = options.pop("tokenizer"), options.pop("budget_tokens")
    counts: Counter = Counter()
    records = []
    try:
        tokenizer = None
        if tokenizer_dir is not None:
            from iquest_core.data.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(tokenizer_dir)
        for t in evolution.triples(repo, counts=counts, **options):
            record = t.to_json()
            if tokenizer is not None:
                try:
                    record["text"] = evolution.format_triple(t, tokenizer, budget_tokens=budget)
                except ValueError:
                    counts["over_token_budget"] += 1
                    continue
            records.append(record)
    except ValueError as error:
        if not str(error).startswith("repo_path:"):
            raise
        counts["not_a_git_repository"] += 1
    return records, dict(counts)


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data evolution", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("repos", nargs="+", help="git repositories (working trees or bare)")
    p.add_argument("--output", required=True, help="JSONL of triples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-range", type=float, nargs=2, default=(0.4, 0.8), metavar=("LOW", "HIGH"),
                   help="start window as fractions of the first-parent history")
    p.add_argument("--max-triples", type=int, default=None, help="per repository (default: one per start)")
    defaults = evolution.SearchCriteria()
    for name in ("min_code_lines", "max_lines", "max_files", "max_commits"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    p.add_argument("--tokenizer", help="tokenizer directory: adds the training text")
    p.add_argument("--budget-tokens", type=int, default=8192, help="token budget of the training text")
    add_engine_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data evolution", parser(), run, argv)


def run(args: argparse.Namespace) -> Summary:
    """Triples of every repository written to args.output; the summary counts repositories as documents."""
    options = {"seed": args.seed, "start_range": tuple(args.start_range), "max_triples": args.max_triples,
               "min_code_lines": args.min_code_lines, "max_lines": args.max_lines, "max_files": args.max_files,
               "max_commits": args.max_commits, "tokenizer": args.tokenizer, "budget_tokens": args.budget_tokens}
    evolution.check_options(**{k: v for k, v in options.items() if k not in ("seed", "tokenizer", "budget_tokens")})
    if args.budget_tokens < 1:
        raise ValueError(f"budget_tokens: expected >= 1, got {args.budget_tokens}")
    results = map_shards(repo_shard, [(repo, options) for repo in args.repos], engine=args.engine,
                         workers=args.workers, address=args.address, desc="evolution")
    counts: Counter = Counter()
    for _, shard_counts in results:
        counts.update(shard_counts)
    counts["triples_written"] = write_jsonl(args.output, (r for records, _ in results for r in records))
    skipped = Counter({k: counts.pop(k) for k in ("not_a_git_repository", "empty_repository", "history_too_short")
                       if k in counts})
    return Summary(len(args.repos), counts, skipped)
