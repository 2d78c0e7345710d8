"""Token shards: what `iquest data tokenize` writes and the trainer reads.

Layout of a shard directory:

    index.json                 {"format": "iquest-token-shards", "version": 1, "dtype": "uint32",
                                "vocab_size": V, "num_documents": N, "num_tokens": T,
                                "shards": [{"name": "shard-00000", "num_documents": n, "num_tokens": t}, ...]}
    shard-00000.tokens.npy     uint32 (t,): the shard's documents' token ids, concatenated
    shard-00000.offsets.npy    int64 (n + 1,): document d is tokens[offsets[d]:offsets[d + 1]];
                               offsets[0] == 0, offsets[-1] == t, non-decreasing

Both arrays are plain `.npy` files, opened memory-mapped (`np.load(..., mmap_mode="r")`). Every file is
written to a temporary name and renamed into place; index.json is written last, so a directory with an
index.json is complete. Documents keep their input order: shard by shard, then within a shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from iquest_core.atomic_io import atomic_path, write_atomic

FORMAT = "iquest-token-shards"
VERSION = 1
INDEX = "index.json"


def write_shard(directory: str | Path, name: str, documents: Sequence[Sequence[int]]) -> dict:
    """Write one shard of `documents` (token id sequences) into `directory`; returns its index entry."""
    directory = Path(directory)
    lengths = np.fromiter((len(d) for d in documents), dtype=np.int64, count=len(documents))
    offsets = np.zeros(len(documents) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.empty(int(offsets[-1]), dtype=np.uint32)
    for doc, start, end in zip(documents, offsets[:-1], offsets[1:]):
        values = np.asarray(doc, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() >= 2**32):
            raise ValueError(f"documents: token ids must fit uint32, got range [{values.min()}, {values.max()}]")
        tokens[start:end] = values
    with atomic_path(directory / f"{name}.tokens.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, tokens)
    with atomic_path(directory / f"{name}.offsets.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, offsets)
    return {"name": name, "num_documents": len(documents), "num_tokens": int(offsets[-1])}


def write_index(directory: str | Path, shards: Sequence[dict], *, vocab_size: int) -> None:
    """Write index.json (last step of a shard directory) atomically."""
    directory = Path(directory)
    index = {"format": FORMAT, "version": VERSION, "dtype": "uint32", "vocab_size": int(vocab_size),
             "num_documents": sum(s["num_documents"] for s in shards),
             "num_tokens": sum(s["num_tokens"] for s in shards), "shards": list(shards)}
    write_atomic(directory / INDEX, json.dumps(index, indent=1))


class TokenShards:
    """Read-only view of a shard directory: `len()` documents, `[i]` and iteration give each document's
    tokens as a uint32 numpy array (a view of the memory map), `lengths()` all document lengths."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index_path = self.directory / INDEX
        if not index_path.is_file():
            raise ValueError(f"directory: {directory} has no {INDEX} (not a complete token shard directory)")
        self.index = json.loads(index_path.read_text())
        if self.index.get("format") != FORMAT or self.index.get("version") != VERSION:
            raise ValueError(f"directory: {directory} is not {FORMAT} version {VERSION}")
        self.vocab_size: int = self.index["vocab_size"]
        self._tokens = [np.load(self.directory / f"{s['name']}.tokens.npy", mmap_mode="r")
                        for s in self.index["shards"]]
        self._offsets = [np.load(self.directory / f"{s['name']}.offsets.npy") for s in self.index["shards"]]
        for entry, tokens, offsets in zip(self.index["shards"], self._tokens, self._offsets):
            if tokens.dtype != np.uint32 or len(offsets) != entry["num_documents"] + 1 or offsets[-1] != len(tokens):
                raise ValueError(f"directory: shard {entry['name']} does not match {INDEX}")
        counts = np.array([len(o) - 1 for o in self._offsets], dtype=np.int64)
        self._first = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self._first[-1])

    @property
    def num_tokens(self) -> int:
        return int(self.index["num_tokens"])

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"document {i} out of range for {len(self)} documents")
        i %= len(self)
        shard = int(np.searchsorted(self._first, i, side="right")) - 1
        d = i - int(self._first[shard])
        offsets = self._offsets[shard]
        return self._tokens[shard][offsets[d]:offsets[d + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for tokens, offsets in zip(self._tokens, self._offsets):
            for start, end in zip(offsets[:-1], offsets[1:]):
                yield tokens[start:end]

    def lengths(self) -> np.ndarray:
        """int64 (len(self),): every document's token count."""
        return np.concatenate([np.diff(o) for o in self._offsets]) if self._offsets else np.zeros(0, np.int64)
