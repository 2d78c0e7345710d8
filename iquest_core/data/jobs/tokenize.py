"""`iquest data tokenize INPUT... --tokenizer DIR --output SHARD_DIR`: token shards for the trainer.

Documents are encoded as content (tokenizer.CodeTokenizer.encode) followed by <|endoftext|>; records
from `iquest data fim` (with a `special` span list) are encoded part by part, the spans becoming their
special ids, and end as their template does (<|im_end|>). The job is the `tokenize` step
(iquest_core.data.steps.tokenize) as a one-step pipeline with output_format "tokens": one token shard
per input shard (--shard-bytes), documents in input order (format: iquest_core.data.shards), staged in
.SHARD_DIR.parts (a killed job re-run with the same arguments resumes there) and renamed to SHARD_DIR
once index.json is written; SHARD_DIR must not exist. A failing shard removes the staging directory.

Packing happens in the trainer's loader: `shards.TokenShards(SHARD_DIR)` gives the documents and
`packing.pack_documents` the rows.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from iquest_core.command_line import CommandParser
from iquest_core.data.jobs import Summary, add_input_arguments, add_shard_argument, run_main, skip_reasons
from iquest_core.data.pipeline import JOB_FILE, Pipeline, run_pipeline
from iquest_core.data.steps.tokenize import Tokenize


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data tokenize", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    add_shard_argument(p)
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (tokenizer.json)")
    p.add_argument("--output", required=True, help="shard directory to create")
    return p


def run(args: argparse.Namespace) -> Summary:
    output = Path(args.output)
    if output.exists():
        raise ValueError(f"output: {output} already exists")
    staging = output.parent / f".{output.name}.parts"
    pipeline = Pipeline(list(args.inputs), str(staging), [Tokenize(args.tokenizer)], output_format="tokens",
                        shard_bytes=args.shard_bytes)
    try:
        result = run_pipeline(pipeline, engine=args.engine, workers=args.workers, address=args.address)
    except RuntimeError as error:  # a shard's step failed (named in the message): nothing stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(str(error)) from error
    (staging / JOB_FILE).unlink()
    shutil.rmtree(staging / ".done")
    staging.rename(output)
    outcomes = result.outcomes
    return Summary(result.documents, {"tokens": outcomes["tokenize:tokens"], "shards": result.shards_run + result.shards_resumed,
                                      "fim_templates": outcomes["tokenize:fim_templates"]}, skip_reasons(result.skipped))


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data tokenize", parser(), run, argv)
