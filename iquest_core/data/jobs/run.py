"""`iquest data run PIPELINE.toml [--engine ray] [--workers N]`: run (or resume) a data pipeline.

The file lists the inputs, the output directory and the steps (format: iquest_core.data.pipeline); the
steps are those of iquest_core.data.steps (`--list-steps` names them). Re-running a killed job with the
same file redoes only its unfinished shards.
"""

from __future__ import annotations

import argparse

from iquest_core.command_line import CommandParser
from iquest_core.data.engine import add_engine_arguments
from iquest_core.data.pipeline import load_pipeline, run_pipeline
from iquest_core.data.steps import step_names


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data run", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pipeline", nargs="?", help="pipeline file (.toml)")
    p.add_argument("--list-steps", action="store_true", help="print the registered step names and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list_steps:
        print("\n".join(step_names()))
        return 0
    if args.pipeline is None:
        raise ValueError("pipeline: expected a pipeline file (or --list-steps)")
    summary = run_pipeline(load_pipeline(args.pipeline), engine=args.engine, workers=args.workers,
                           address=args.address, progress=not args.no_progress)
    summary.print("iquest data run")
    return 0
