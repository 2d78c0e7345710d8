"""The `iquest` command: one entry point for the package's runnable jobs.

    iquest demo      train a tiny LoopCoder on the package's own sources
    iquest drill     silent-data-corruption drill
    iquest selftest  kernel self-test against the float64 reference
    iquest data      data jobs: fim, filter, tokenize, evolution, dedup, decontam (`iquest data --help`)
    iquest train     stage recipes (pretrain, anneal, midtrain, sft, tiny) on one process or torchrun
    iquest export    a training checkpoint to the Hugging Face layout
    iquest eval      evaluation (HumanEval pass@k)
    iquest rl        GRPO reinforcement learning with test-pass rewards
    iquest scaling   multilingual code scaling laws: fit, mix, sweep

Arguments after the subcommand go to that job (`iquest drill --help`).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "demo": "iquest_core.train.demo",
    "drill": "iquest_core.train.drill",
    "selftest": "iquest_core.train.selftest",
    "data": "iquest_core.data.cli",
    "train": "iquest_core.train.cli",
    "export": "iquest_core.train.export",
    "eval": "iquest_core.train.evaluate",
    "rl": "iquest_core.train.rl_cli",
    "scaling": "iquest_core.scaling.cli",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    result = importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
