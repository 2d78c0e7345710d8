"""`iquest scaling sweep`: tiny real training runs (model sizes x token counts x languages) -> DIR/runs.csv,
then `iquest scaling fit` on it (the sweep itself: iquest_core.jobs.sweep)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from iquest_core.command_line import CommandParser, run_command
from iquest_core.jobs.sweep import LANGUAGES, Grid, run_sweep
from iquest_core.scaling.cli import add_fit_options, fit_runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(prog="iquest scaling sweep", description=__doc__.split("\n")[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    grid = Grid()
    parser.add_argument("--output", type=Path, required=True, help="folder for data, runs, runs.csv, law.json, plots")
    parser.add_argument("--languages", default=",".join(grid.languages), help=f"comma-separated, from {', '.join(LANGUAGES)}")
    parser.add_argument("--sizes", default=",".join(f"{h}x{n}" for h, n in grid.sizes),
                        help="comma-separated HIDDENxLAYERS model sizes")
    parser.add_argument("--tokens", default=",".join(map(str, grid.tokens)), help="comma-separated tokens per run")
    parser.add_argument("--batch-tokens", type=int, default=grid.batch_tokens, help="tokens per optimizer step")
    parser.add_argument("--lr", type=float, default=grid.lr, help="peak learning rate of the cosine schedule")
    parser.add_argument("--corpus-bytes", type=float, default=grid.corpus_bytes, help="training text per language")
    parser.add_argument("--eval-tokens", type=int, default=grid.eval_tokens, help="held-out tokens per language")
    parser.add_argument("--jobs", type=int, default=grid.jobs, help="runs at a time")
    parser.add_argument("--threads", type=int, default=grid.threads, help="threads per run")
    add_fit_options(parser)
    return parser.parse_args(argv)


def _size(text: str) -> tuple[int, int]:
    hidden, layers = text.split("x")  # ValueError unless exactly HIDDENxLAYERS
    return int(hidden), int(layers)


def sweep_grid(args: argparse.Namespace) -> Grid:
    """The Grid of the `sweep` arguments; ValueError naming a malformed list."""

    def items(name: str, convert):
        try:
            return tuple(convert(s.strip()) for s in getattr(args, name).split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--{name}: cannot read {getattr(args, name)!r}") from None

    return Grid(languages=items("languages", str), sizes=items("sizes", _size),
                tokens=items("tokens", lambda s: int(float(s))), batch_tokens=args.batch_tokens, lr=args.lr,
                corpus_bytes=int(args.corpus_bytes), eval_tokens=args.eval_tokens, seed=args.seed, jobs=args.jobs,
                threads=args.threads)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def job() -> None:
        grid = sweep_grid(args)
        began = time.perf_counter()
        runs_csv = run_sweep(args.output, grid)
        print(f"{runs_csv}: {len(grid.languages) * len(grid.sizes) * len(grid.tokens)} runs, "
              f"{time.perf_counter() - began:.0f} s")
        fit_runs(runs_csv, args.output, args.bootstrap, args.confidence, args.seed)
    return run_command("iquest scaling sweep", job)
