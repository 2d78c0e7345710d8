"""The `iquest data` jobs: each module has `main(argv)` (argparse) and `run(args) -> Summary`.

Shared here: reading the inputs, per-document random generators and the closing summary.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from iquest_core.data import steps
from iquest_core.data.engine import add_engine_arguments
from iquest_core.data.sources import Document, Skipped, read_documents


def add_input_arguments(parser: Any) -> None:
    """INPUT... (directories, .jsonl[.gz], .parquet) and the engine options."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a repository directory, or a .jsonl / .jsonl.gz / .parquet file with path, content, repo")
    add_engine_arguments(parser)


def unit_interval(text: str) -> float:
    """argparse type: a float in [0, 1] (a rate or a share)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1], got {text}")
    return value


def load_documents(inputs: list[str], skipped: Skipped) -> list[Document]:
    return list(read_documents(inputs, skipped=skipped))


def document_rng(seed: int, doc: Document) -> random.Random:
    """A generator that depends only on the seed and the document's identity (repo, path), so a job's
    output does not depend on how documents are spread over workers."""
    return steps.document_rng(seed, {"repo": doc.repo, "path": doc.path})


@dataclass
class Summary:
    """What a job did: documents in, counts by outcome, inputs skipped by reason."""
    documents: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def print(self, title: str, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream  # the current stderr, not the one at import
        print(f"{title}: {self.documents} documents in", file=stream)
        for name, counts in (("outcome", self.outcomes), ("skipped", self.skipped)):
            for key, count in sorted(counts.items()):
                print(f"  {name:8s} {key:28s} {count}", file=stream)


def run_main(title: str, parser: Any, run: Any, argv: list[str] | None) -> int:
    """A job's `main`: parse argv, run, print the summary; bad input (ValueError, OSError) becomes one
    `title: error: ...` line on stderr and exit status 2 instead of a traceback."""
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except (ValueError, OSError) as error:
        print(f"{title}: error: {error}", file=sys.stderr)
        return 2
    summary.print(title)
    return 0
