"""Documents from the inputs of every data job.

    skipped = Skipped()
    for doc in read_documents(["repo_dir", "stack.jsonl.gz", "part-0.parquet"], skipped=skipped):
        doc.path, doc.content, doc.repo
    skipped.counts   # {"binary": 3, "not_utf8": 1, ...}

An input is
- a directory: a checked-out repository; its files in sorted path order, `.git` skipped, symlinks not
  followed, path relative to the directory (POSIX), repo = the directory's name;
- a `.jsonl` / `.jsonl.gz` file or a `.parquet` file with The Stack's fields `path`, `content`, `repo`
  (repo may be missing or null). A record without `content` may carry `text` instead (the output of
  `iquest data fim`, whose `special` field lists the template's special-token spans, see fim.py).

Content is decoded as strict UTF-8 and kept exactly (a BOM stays U+FEFF). Binary files (a NUL byte),
non-UTF-8 files, unreadable files and malformed records are skipped and counted by reason, never fatal.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKIP_REASONS = ("binary", "not_utf8", "unreadable", "bad_record", "corrupt")


@dataclass(frozen=True)
class Document:
    path: str
    content: str
    repo: str | None = None
    special: tuple[tuple[int, int], ...] = field(default=())  # (start, end) str spans of special tokens


class Skipped:
    """Counts of skipped inputs by reason (one of SKIP_REASONS)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        if reason not in SKIP_REASONS:
            raise ValueError(f"reason: expected one of {SKIP_REASONS}, got {reason!r}")
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"Skipped({dict(self.counts)})"


def decode_content(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for UTF-8 text, (None, reason) for binary or non-UTF-8 bytes."""
    if b"\x00" in data:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not_utf8"


def read_documents(inputs: Sequence[str | Path], *, skipped: Skipped | None = None) -> Iterator[Document]:
    """Documents of every input in order; see the module docstring."""
    if isinstance(inputs, (str, Path)):
        raise ValueError(f"inputs: expected a sequence of paths, got the single path {inputs!r}")
    skipped = Skipped() if skipped is None else skipped
    for source in inputs:
        source = Path(source)
        name = source.name.lower()
        if not source.exists():
            raise ValueError(f"inputs: {source} does not exist")
        if source.is_dir():
            yield from _read_directory(source, skipped)
        elif name.endswith((".jsonl", ".jsonl.gz")):
            yield from _read_jsonl(source, skipped)
        elif name.endswith(".parquet"):
            yield from _read_parquet(source, skipped)
        else:
            raise ValueError(f"inputs: expected a directory, .jsonl, .jsonl.gz or .parquet, got {source}")


def directory_files(root: Path) -> Iterator[Path]:
    """The files of a repository directory in reading order: sorted paths, `.git` and symlinks skipped."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not os.path.islink(os.path.join(dirpath, d)))
        for filename in sorted(filenames):
            full = Path(dirpath, filename)
            if not full.is_symlink():
                yield full


def file_document(root: Path, full: Path, skipped: Skipped) -> Document | None:
    """The document of file `full` of repository directory `root`, or None (counted in skipped)."""
    try:
        data = full.read_bytes()
    except OSError:
        skipped.add("unreadable")
        return None
    text, reason = decode_content(data)
    if text is None:
        skipped.add(reason)
        return None
    return Document(full.relative_to(root).as_posix(), text, root.resolve().name)


def _read_directory(root: Path, skipped: Skipped) -> Iterator[Document]:
    for full in directory_files(root):
        doc = file_document(root, full, skipped)
        if doc is not None:
            yield doc


def record_document(record: object, skipped: Skipped) -> Document | None:
    """The document of one JSONL / Parquet record, or None (counted in skipped)."""
    if not isinstance(record, dict):
        skipped.add("bad_record")
        return None
    content = record.get("content", record.get("text"))
    path, repo = record.get("path"), record.get("repo")
    if isinstance(content, bytes):
        content, reason = decode_content(content)
        if content is None:
            skipped.add(reason)
            return None
    if not isinstance(content, str) or not isinstance(path, str) or not isinstance(repo, (str, type(None))):
        skipped.add("bad_record")
        return None
    if "\x00" in content:
        skipped.add("binary")
        return None
    special = record.get("special") or ()
    try:
        special = tuple((int(a), int(b)) for a, b in special)
    except (TypeError, ValueError):
        skipped.add("bad_record")
        return None
    return Document(path, content, repo, special)


def line_records(lines: Iterable[bytes], skipped: Skipped) -> Iterator[object]:
    """The JSON value of every non-blank line; lines that are not UTF-8 JSON counted as "bad_record"."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            skipped.add("bad_record")


def _read_jsonl(source: Path, skipped: Skipped) -> Iterator[Document]:
    opener = gzip.open if source.name.lower().endswith(".gz") else open
    with opener(source, "rb") as handle:
        for record in line_records(handle, skipped):
            doc = record_document(record, skipped)
            if doc is not None:
                yield doc


def _read_parquet(source: Path, skipped: Skipped) -> Iterator[Document]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source)
    columns = [c for c in ("path", "content", "text", "repo", "special") if c in parquet.schema_arrow.names]
    for batch in parquet.iter_batches(columns=columns, batch_size=1024):
        for record in batch.to_pylist():
            doc = record_document(record, skipped)
            if doc is not None:
                yield doc
