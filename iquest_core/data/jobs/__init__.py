"""The `iquest data` jobs: each module has `main(argv)` (argparse) and `run(args) -> Summary`.

Shared here: the input and shard arguments, one-step pipelines (run_one_step), per-document random
generators and the closing summary.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import Counter
from pathlib import Path
from collections.abc import Callable
from typing import Any

from iquest_core.atomic_io import atomic_path
from iquest_core.data import steps
from iquest_core.data.engine import add_engine_arguments
from iquest_core.data.pipeline import DEFAULT_SHARD_BYTES, Pipeline, Summary, run_pipeline
from iquest_core.data.sources import Document


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


def document_rng(seed: int, doc: Document) -> random.Random:
    """A generator that depends only on the seed and the document's identity (repo, path), so a job's
    output does not depend on how documents are spread over workers."""
    return steps.document_rng(seed, {"repo": doc.repo, "path": doc.path})


def add_shard_argument(parser: Any) -> None:
    """--shard-bytes of the jobs that run as one-step pipelines."""
    parser.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES,
                        help="largest input shard in bytes (byte ranges of .jsonl, groups of files)")


def run_one_step(args: argparse.Namespace, step: Any, seed: int = 0) -> Summary:
    """`step` as a one-step pipeline (iquest_core.data.pipeline) over args.inputs, its shards staged in
    OUTPUT.parts/ (a killed job re-run with the same arguments resumes there) and joined in order into
    the one file args.output; outcomes without the step's name, skipped inputs by reason."""
    output = Path(args.output)
    staging = output.parent / f".{output.name}.parts"
    pipeline = Pipeline(list(args.inputs), str(staging), [step], output_format="jsonl", shard_bytes=args.shard_bytes,
                        seed=seed)
    result = run_pipeline(pipeline, engine=args.engine, workers=args.workers, address=args.address)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp, open(tmp, "wb") as joined:
        for shard in sorted(staging.glob("shard-*.jsonl")):
            with open(shard, "rb") as part:
                shutil.copyfileobj(part, joined)
    shutil.rmtree(staging)
    prefix = f"{step.name}:"
    outcomes = Counter({k.removeprefix(prefix): v for k, v in result.outcomes.items()})
    return Summary(result.documents, outcomes, skip_reasons(result.skipped))


def rewrite_jsonl(source: Path, output: Path, change: Callable[[dict], dict]) -> None:
    """output (atomically) = change(record) for each line of the JSONL file source, in order; source removed."""
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as sink, open(source, encoding="utf-8") as lines:
        for line in lines:
            sink.write(json.dumps(change(json.loads(line)), ensure_ascii=False) + "\n")
    source.unlink()


def skip_reasons(skipped: Counter[str]) -> Counter[str]:
    """A pipeline's skipped inputs ("reason: file" -> count) summed by reason."""
    reasons: Counter[str] = Counter()
    for key, count in skipped.items():
        reasons[key.partition(":")[0]] += count
    return reasons


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
