"""Reading input shards and writing output shards.

    shards, skipped = plan_shards(["repo_dir", "big.jsonl", "part.jsonl.gz", "data.parquet"], max_bytes=32 << 20)
    for doc in read_shard(shards[0], ctx): ...
    docs, size = write_shard(out / f"shard-00000.jsonl.gz", stream)

A shard (`InputShard`, small and JSON-serialisable, all the driver holds) is
- "files": consecutive files of a repository directory (sources.directory_files order), up to max_bytes;
- "lines": the byte range [start, end) of an uncompressed .jsonl file: the lines that *start* inside it
  (large files are cut at max_bytes; a reader at start > 0 skips the partial line it lands in);
- "gzip": a whole .jsonl.gz file (gzip cannot be entered in the middle);
- "row_groups": consecutive row groups [start, end) of a .parquet file, up to max_bytes.

Records become documents as in iquest_core.data.sources (the same skip rules), keeping their other
fields. Bad input never aborts: a line that is not UTF-8 JSON is skipped as "bad_record", a truncated or
corrupt gzip stream or Parquet file ends its shard as "corrupt" (the documents before it are kept), a
Parquet file whose footer cannot be read is skipped whole at planning; each named with its file.

Writers choose the format by the file's extension (.jsonl, .jsonl.gz, .parquet; NAME.tokens: the token shard
NAME.tokens.npy + NAME.offsets.npy of the tokenize step, steps.tokenize), write to a temporary
name and rename (a killed worker leaves no partial shard), and are deterministic: gzip without a
timestamp or name, Parquet with the schema of the first 1024 documents (later fields outside it are
dropped, missing ones null).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iquest_core.atomic_io import atomic_path
from iquest_core.data.sources import directory_files, file_document, line_records, record_document
from iquest_core.data.steps import Doc, ShardContext

OUTPUT_FORMATS = ("jsonl", "jsonl.gz", "parquet", "tokens")
PARQUET_BATCH = 1024
_CORRUPT = (EOFError, OSError, zlib.error)


@dataclass(frozen=True)
class InputShard:
    kind: str  # "files", "lines", "gzip" or "row_groups"
    source: str
    start: int = 0
    end: int = 0
    files: tuple[str, ...] = ()  # "files": paths relative to source

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "start": self.start, "end": self.end,
                "files": list(self.files)}


def plan_shards(inputs: Iterable[str | Path], max_bytes: int) -> tuple[list[InputShard], list[tuple[str, str]]]:
    """The shards of every input in order, and (file, reason) of inputs skipped whole."""
    if isinstance(inputs, (str, Path)):
        raise ValueError(f"inputs: expected a sequence of paths, got the single path {inputs!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes: expected an int >= 1, got {max_bytes!r}")
    shards: list[InputShard] = []
    skipped: list[tuple[str, str]] = []
    for source in map(Path, inputs):
        name = source.name.lower()
        if not source.exists():
            raise ValueError(f"inputs: {source} does not exist")
        if source.is_dir():
            shards += _plan_directory(source, max_bytes)
        elif name.endswith(".jsonl"):
            size = source.stat().st_size
            shards += [InputShard("lines", str(source), s, min(s + max_bytes, size)) for s in range(0, size, max_bytes)]
        elif name.endswith(".jsonl.gz"):
            shards.append(InputShard("gzip", str(source)))
        elif name.endswith(".parquet"):
            try:
                shards += _plan_parquet(source, max_bytes)
            except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... for a bad footer
                skipped.append((str(source), f"corrupt ({type(error).__name__})"))
        else:
            raise ValueError(f"inputs: expected a directory, .jsonl, .jsonl.gz or .parquet, got {source}")
    return shards, skipped


def _plan_directory(root: Path, max_bytes: int) -> list[InputShard]:
    shards, group, size = [], [], 0
    for full in directory_files(root):
        length = full.stat().st_size
        if group and size + length > max_bytes:
            shards.append(InputShard("files", str(root), files=tuple(group)))
            group, size = [], 0
        group.append(full.relative_to(root).as_posix())
        size += length
    if group:
        shards.append(InputShard("files", str(root), files=tuple(group)))
    return shards


def _plan_parquet(source: Path, max_bytes: int) -> list[InputShard]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(source).metadata
    shards, start, size = [], 0, 0
    for group in range(meta.num_row_groups):
        length = meta.row_group(group).total_byte_size
        if group > start and size + length > max_bytes:
            shards.append(InputShard("row_groups", str(source), start, group))
            start, size = group, 0
        size += length
    if meta.num_row_groups > start:
        shards.append(InputShard("row_groups", str(source), start, meta.num_row_groups))
    return shards


class _SkipTo:
    """sources.Skipped's interface, reporting to a shard context with the file named."""

    def __init__(self, ctx: ShardContext, source: str) -> None:
        self.ctx, self.source = ctx, source

    def add(self, reason: str) -> None:
        self.ctx.skip(reason, self.source)


def as_doc(record: Any, skip: _SkipTo) -> Doc | None:
    """The document of one input record (sources.record_document's rules), other fields kept."""
    document = record_document(record, skip)
    if document is None:
        return None
    doc = {k: v for k, v in record.items() if k not in ("text", "special")}
    doc.update(path=document.path, content=document.content, repo=document.repo)
    if document.special:
        doc["special"] = [list(span) for span in document.special]
    return doc


def read_shard(shard: InputShard, ctx: ShardContext) -> Iterator[Doc]:
    """The documents of one shard, in file order (see the module docstring)."""
    skip = _SkipTo(ctx, shard.source)
    if shard.kind == "files":
        root = Path(shard.source)
        for relative in shard.files:
            skip.source = f"{root}/{relative}"
            document = file_document(root, root / relative, skip)
            if document is not None:
                yield {"path": document.path, "content": document.content, "repo": document.repo}
    elif shard.kind == "lines":
        with open(shard.source, "rb") as handle:
            yield from _docs_of_lines(_lines_in_range(handle, shard.start, shard.end), skip)
    elif shard.kind == "gzip":
        try:
            with gzip.open(shard.source, "rb") as handle:
                yield from _docs_of_lines(handle, skip)
        except _CORRUPT:
            skip.add("corrupt")
    elif shard.kind == "row_groups":
        yield from _read_row_groups(shard, skip)
    else:
        raise ValueError(f"shard: unknown kind {shard.kind!r}")


def _lines_in_range(handle: Any, start: int, end: int) -> Iterator[bytes]:
    position = start
    if start > 0:
        handle.seek(start - 1)
        position += len(handle.readline()) - 1
    while position < end:
        line = handle.readline()
        if not line:
            return
        position += len(line)
        yield line


def _docs_of_lines(lines: Iterable[bytes], skip: _SkipTo) -> Iterator[Doc]:
    for record in line_records(lines, skip):
        doc = as_doc(record, skip)
        if doc is not None:
            yield doc


def _read_row_groups(shard: InputShard, skip: _SkipTo) -> Iterator[Doc]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(shard.source)
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=range(shard.start, shard.end))
        for batch in batches:
            for record in batch.to_pylist():
                doc = as_doc(record, skip)
                if doc is not None:
                    yield doc
    except Exception:  # pyarrow's errors for corrupt pages have no common base but Exception
        skip.add("corrupt")


def output_format(path: str | Path) -> str:
    """"jsonl", "jsonl.gz" or "parquet" from a file name; ValueError otherwise."""
    name = Path(path).name.lower()
    for fmt in ("jsonl.gz", "jsonl", "parquet", "tokens"):
        if name.endswith(f".{fmt}"):
            return fmt
    raise ValueError(f"output: expected a .jsonl, .jsonl.gz, .parquet or .tokens name, got {path}")


def write_shard(path: str | Path, docs: Iterable[Doc]) -> tuple[int, int]:
    """Write docs to path atomically in the format of its extension; (documents, content bytes)."""
    path = Path(path)
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = [0, 0]

    def counted(stream: Iterable[Doc]) -> Iterator[Doc]:
        for doc in stream:
            counts[0] += 1
            counts[1] += len(doc["content"].encode("utf-8"))
            yield doc

    if fmt == "tokens":
        from iquest_core.data.steps.tokenize import write_token_shard

        write_token_shard(path, counted(docs))
        return counts[0], counts[1]
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            _write_parquet(tmp, counted(docs))
        else:
            with open(tmp, "wb") as raw:
                sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) \
                    if fmt == "jsonl.gz" else raw
                with sink:
                    for doc in counted(docs):
                        sink.write((json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8"))
    return counts[0], counts[1]


def _write_parquet(path: Path, docs: Iterator[Doc]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        while True:
            batch = [doc for _, doc in zip(range(PARQUET_BATCH), docs)]
            if not batch and writer is not None:
                return
            table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None) if batch else \
                pa.table({"path": pa.array([], pa.string()), "content": pa.array([], pa.string()),
                          "repo": pa.array([], pa.string())})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            if not batch:
                return
    finally:
        if writer is not None:
            writer.close()
