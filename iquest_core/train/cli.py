"""`iquest train`: run a stage recipe on one process or under torchrun.

    iquest train --recipe NAME_OR_TOML --output DIR [--set key=value ...] [--resume]
    iquest train --explain [KEY]      every recipe key (or those under KEY): type, default, doc
    torchrun --nproc-per-node N -m iquest_core.train --recipe ... --output DIR     # same flags

Bundled recipes: pretrain, anneal, midtrain-32k, midtrain-128k, sft-thinking, sft-instruct, tiny
(iquest_core/train/recipes/*.toml; the schema: iquest_core/train/schema.py, `--explain`). Writes DIR/metrics.jsonl,
DIR/loss.png, DIR/checkpoints/step-N; `iquest export DIR/checkpoints/step-N HF_DIR` makes a
Hugging Face directory of a checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from iquest_core.command_line import CommandParser
from iquest_core.train.recipe import BUNDLED, explain, load_recipe


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(prog="iquest train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--recipe", help=f"bundled ({', '.join(BUNDLED)}) or a .toml path")
    parser.add_argument("--output", help="run directory (metrics, plot, checkpoints)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key by its dotted path (repeatable), e.g. optim.lr=1e-3")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in DIR")
    parser.add_argument("--explain", nargs="?", const="", metavar="KEY",
                        help="print every recipe key (or those under KEY) with its type, default and doc, and exit")
    args = parser.parse_args(argv)
    if args.explain is None and not (args.recipe and args.output):
        parser.error("the following arguments are required: --recipe, --output (or --explain [KEY])")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from iquest_core.train.trainer import train

    try:
        if args.explain is not None:
            print(explain(key=args.explain or None))
            return 0
        recipe = load_recipe(args.recipe, args.overrides)
        records = train(recipe, args.output, resume=args.resume)
    except ValueError as e:
        print(f"iquest train: error: {e}", file=sys.stderr)
        return 2
    if records:
        last = records[-1]
        print(f"step {last['step']}: loss {last['loss']:.4f}, {last['tokens_per_s']:,.0f} tokens/s; "
              f"metrics in {args.output}/metrics.jsonl, plot {args.output}/loss.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
