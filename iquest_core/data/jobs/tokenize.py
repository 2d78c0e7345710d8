"""`iquest data tokenize INPUT... --tokenizer DIR --output SHARD_DIR`: token shards for the trainer.

Documents are encoded as content (tokenizer.CodeTokenizer.encode) followed by <|endoftext|>; records
from `iquest data fim` (with a `special` span list) are encoded part by part, the spans becoming their
special ids, and end as their template does (<|im_end|>). Shards of --docs-per-shard documents are
written in input order by the workers (format: iquest_core.data.shards) into a temporary directory that
is renamed to SHARD_DIR once index.json is written; SHARD_DIR must not exist.

Packing happens in the trainer's loader: `shards.TokenShards(SHARD_DIR)` gives the documents and
`packing.pack_documents` the rows.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from iquest_core.command_line import CommandParser
from iquest_core.atomic_io import public_mode
from iquest_core.data.engine import chunks, map_shards
from iquest_core.data.jobs import Summary, add_input_arguments, load_documents, run_main
from iquest_core.data.shards import write_index, write_shard
from iquest_core.data.sources import Document, Skipped
from iquest_core.data.tokenizer import EOS_TOKEN, CodeTokenizer, load_tokenizer


@functools.lru_cache(maxsize=2)
def _tokenizer(directory: str) -> CodeTokenizer:
    return load_tokenizer(directory)


def encode_document(tok: CodeTokenizer, doc: Document) -> list[int]:
    """Token ids of one document (see the module docstring)."""
    if not doc.special:
        return tok.encode(doc.content) + [tok.special_id(EOS_TOKEN)]
    parts, at = [], 0
    for start, end in doc.special:
        if not at <= start < end <= len(doc.content):
            raise ValueError(f"special: span {(start, end)} of {doc.path} is out of order or out of range")
        parts += [(False, doc.content[at:start]), (True, doc.content[start:end])]
        at = end
    return tok.encode_parts(parts + [(False, doc.content[at:])])


def _shard(tokenizer: str, directory: str, job: tuple[int, list[Document]]) -> dict:
    number, docs = job
    tok = _tokenizer(tokenizer)
    return write_shard(directory, f"shard-{number:05d}", [encode_document(tok, doc) for doc in docs])


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data tokenize", description=__doc__.split("\n\n")[0])
    add_input_arguments(p)
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (tokenizer.json)")
    p.add_argument("--output", required=True, help="shard directory to create")
    p.add_argument("--docs-per-shard", type=int, default=4096)
    return p


def run(args: argparse.Namespace) -> Summary:
    output = Path(args.output)
    if output.exists():
        raise ValueError(f"output: {output} already exists")
    if args.docs_per_shard < 1:
        raise ValueError(f"docs_per_shard: expected >= 1, got {args.docs_per_shard}")
    vocab_size = _tokenizer(args.tokenizer).vocab_size
    skipped = Skipped()
    docs = load_documents(args.inputs, skipped)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        os.chmod(staging, public_mode(directory=True))
        jobs = list(enumerate(chunks(docs, args.docs_per_shard)))
        entries = map_shards(functools.partial(_shard, args.tokenizer, staging), jobs, engine=args.engine,
                             workers=args.workers, address=args.address, desc="tokenize")
        write_index(staging, entries, vocab_size=vocab_size)
        Path(staging).rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tokens = sum(e["num_tokens"] for e in entries)
    return Summary(len(docs), Counter({"tokens": tokens, "shards": len(entries),
                                       "fim_templates": sum(bool(d.special) for d in docs)}), skipped.counts)


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data tokenize", parser(), run, argv)
