"""`iquest data fim INPUT... --output OUT.jsonl`: fill-in-the-middle training examples.

Each document is, with probability --fim-rate, cut by one mode drawn from --modes (fim.MODES) and
written as a FIM template; with probability --repo-level-rate (when its repository has other code
files) the template is the repository-level one, its context the most similar files of the repository
within --context-tokens (counted with --tokenizer, or in UTF-8 bytes, an upper bound on byte-level BPE
tokens, without one). The other documents, and those a syntax mode cannot cut (no language, no clean
parse, no node of the level), are written unchanged as mode "plain", the reason counted.

Output records, in input order: {"text", "special", "mode", "level", "language", "path", "repo"} and the
input record's other fields; `special` lists the [start, end) str spans of the template's special
tokens, which `iquest data tokenize` turns into special ids (a literal special-token string in the source
stays text). Deterministic for a seed whatever the worker count or engine: every document draws from
its own generator (seed, repo, path).

The job is the `fim` step (iquest_core.data.steps.fim_templates) as a one-step pipeline: streamed shard by shard
(--shard-bytes), resumable in .OUTPUT.parts; a repository's context files are those of the same input
shard (a directory's files are planned in order, so a repository's files sit together).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iquest_core.command_line import CommandParser
from iquest_core.data import fim
from iquest_core.data.jobs import (Summary, add_input_arguments, add_shard_argument, rewrite_jsonl, run_main,
                                   run_one_step, unit_interval)
from iquest_core.data.steps.fim_templates import Fim


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data fim", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    add_shard_argument(p)
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
    step = Fim(args.fim_rate, list(args.modes), args.repo_level_rate, args.context_tokens, args.tokenizer)
    step.settings(args.seed)  # validates modes and context_tokens before any work
    output = Path(args.output)
    staged = output.with_name(f".{output.name}.content")
    summary = run_one_step(argparse.Namespace(**{**vars(args), "output": staged}), step, seed=args.seed)
    rewrite_jsonl(staged, output, lambda record: {"text": record.pop("content"), **record})
    return summary


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data fim", parser(), run, argv)
