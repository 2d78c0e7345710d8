"""`iquest data SUBCOMMAND ...`: the data jobs. Arguments after the subcommand go to that job's `main`.

    fim        fill-in-the-middle examples (file and repository level)
    filter     drop files that do not parse (syntax validity)
    tokenize   token shards (uint32 .npy + document index) for the trainer
    evolution  repository-evolution triples (R_start, patch, R_end) from git history
    dedup      exact and MinHash-LSH near-duplicate removal
    decontam   benchmark decontamination by n-gram overlap
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "fim": "iquest_core.data.jobs.fim",
    "filter": "iquest_core.data.jobs.filter",
    "tokenize": "iquest_core.data.jobs.tokenize",
    "evolution": "iquest_core.data.jobs.evolution",
    "dedup": "iquest_core.data.jobs.dedup",
    "decontam": "iquest_core.data.jobs.decontam",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        raise SystemExit(0)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]) or 0)
