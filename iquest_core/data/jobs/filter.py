"""`iquest data filter INPUT... --output OUT.jsonl [--max-error-share 0.0]`: syntax validity filter.

Files in one of syntax.LANGUAGES (by extension) are parsed with tree-sitter; a file whose share of
ERROR/MISSING nodes (syntax.Parsed.error_share) exceeds --max-error-share is dropped (the default 0
drops every file that does not parse cleanly). Files in other languages pass unchecked, counted.
Output records keep their input fields ({"path", "content", "repo"} for files of a directory), in input
order, readable by every data job. The job is the `syntax_filter` step as a one-step pipeline
(iquest_core.data.pipeline): streamed shard by shard, resumable.
"""

from __future__ import annotations

import argparse

from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, add_input_arguments, add_shard_argument, run_main, run_one_step, unit_interval
from iquest_core.data.steps.code import SyntaxFilter


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data filter", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    add_shard_argument(p)
    p.add_argument("--output", required=True, help="output .jsonl")
    p.add_argument("--max-error-share", type=unit_interval, default=0.0,
                   help="largest share of ERROR/MISSING nodes kept (0: only clean parses)")
    return p


def run(args: argparse.Namespace) -> Summary:
    return run_one_step(args, SyntaxFilter(args.max_error_share))


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data filter", parser(), run, argv)
