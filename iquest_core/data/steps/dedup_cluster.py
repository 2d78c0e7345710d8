"""The candidate-pair and cluster stages of the `dedup` step, in memory bounded by chunks (not by pairs).

Documents are numbered densely in input order (shard by shard). A candidate pair (i, j), i < j, is the
uint64 key i << 32 | j, so key order is pair order (by i, then j).

- `PairRuns` writes one band's pairs as sorted runs of at most RUN_PAIRS keys (raw uint64 files);
  a bucket of k documents is expanded row by row, so even one huge bucket never holds k**2 / 2 pairs at once.
- `merged_pairs` streams the sorted union of many runs (every band's) in chunks: each round reads a block
  of every run, emits the keys up to the smallest block end, and advances; memory is
  max(MERGE_KEYS, runs * MIN_BLOCK) keys whatever the number of pairs.
- `cluster` walks the merged pairs once with a union-find over every document (`union_find`, a numpy int32
  parent array: 4 bytes per document, the one state that grows with the corpus), verifying each pair whose ends
  are not yet joined by the Jaccard of their shingle sets, as sorted arrays of 64-bit shingle hashes
  (`shingle_hashes`: computed from the shard text files, read through the last OPEN_SHARDS shards' open
  files, the last CACHE_SHINGLES hashes' worth of arrays kept), all pairs of one document at once.
  Each component's root is its smallest document.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from iquest_core.atomic_io import atomic_path
from iquest_core.data.steps.shingle_hashes import shingle_hashes, similar_to
from iquest_core.data.union_find import join, roots

RUN_PAIRS = 1 << 20
MERGE_KEYS = 1 << 21
MIN_BLOCK = 1024
TRIANGLE_ROWS = 2048
CACHE_SHINGLES = 1 << 22
OPEN_SHARDS = 64
_LOW = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class PairRuns:
    """Sorted runs `{prefix}-{r}.bin` of the pair keys of the buckets added; `paths` and `count` once closed."""

    def __init__(self, prefix: Path) -> None:
        self.prefix, self.paths, self.count = prefix, [], 0
        self._pending: list[np.ndarray] = []
        self._size = 0

    def add_bucket(self, ids: np.ndarray) -> None:
        """Every pair of `ids` (sorted, distinct document numbers)."""
        ids = ids.astype(np.uint64)
        if len(ids) <= TRIANGLE_ROWS:
            first, second = np.triu_indices(len(ids), 1)
            self._add((ids[first] << _SHIFT) | ids[second])
            return
        for row in range(len(ids) - 1):
            self._add((ids[row] << _SHIFT) | ids[row + 1:])

    def _add(self, keys: np.ndarray) -> None:
        self._pending.append(keys)
        self._size += len(keys)
        if self._size >= RUN_PAIRS:
            self._flush()

    def _flush(self) -> None:
        if not self._size:
            return
        keys = np.unique(np.concatenate(self._pending))
        path = Path(f"{self.prefix}-{len(self.paths)}.bin")
        with atomic_path(path) as tmp:
            keys.tofile(tmp)
        self.paths.append(str(path))
        self.count += len(keys)
        self._pending, self._size = [], 0

    def close(self) -> tuple[int, list[str]]:
        self._flush()
        return self.count, self.paths


def merged_pairs(paths: Sequence[str]) -> Iterator[np.ndarray]:
    """The sorted, duplicate-free union of the sorted runs in `paths`, as consecutive chunks of keys."""
    sizes = [os.path.getsize(p) // 8 for p in paths]
    cursors = [0] * len(paths)
    block = max(MIN_BLOCK, MERGE_KEYS // max(len(paths), 1))
    while True:
        blocks = {r: np.fromfile(paths[r], dtype=np.uint64, count=block, offset=cursors[r] * 8)
                  for r in range(len(paths)) if cursors[r] < sizes[r]}
        if not blocks:
            return
        bound = min(keys[-1] for keys in blocks.values())  # every run's keys <= bound are in its block
        parts = []
        for r, keys in blocks.items():
            taken = int(np.searchsorted(keys, bound, side="right"))
            parts.append(keys[:taken])
            cursors[r] += taken
        yield np.unique(np.concatenate(parts))


class ShingleReader:
    """Shingle hashes (shingle_hashes.shingle_hashes) of documents by number, read from the shard text files
    (`STATE/shard-N.texts` with `.offsets.npy`); `first[s]` is shard s's first document number. Keeps the
    OPEN_SHARDS shards read last open (file and offsets) and the arrays read last up to CACHE_SHINGLES
    hashes in all (a document in many candidate pairs is shingled once while it stays in the cache).
    Close it (or use it as a context manager) to close the files."""

    def __init__(self, state: Path, first: np.ndarray, ngram: int) -> None:
        self.state, self.first, self.ngram = state, first, ngram
        self.shards: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cached = 0

    def __enter__(self) -> ShingleReader:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        while self.shards:
            os.close(self.shards.popitem()[1][0])

    def _shard(self, shard: int) -> tuple[int, np.ndarray]:
        found = self.shards.get(shard)
        if found is None:
            found = (os.open(self.state / f"shard-{shard:05d}.texts", os.O_RDONLY),
                     np.load(self.state / f"shard-{shard:05d}.offsets.npy"))
            self.shards[shard] = found
            if len(self.shards) > OPEN_SHARDS:
                os.close(self.shards.popitem(last=False)[1][0])
        self.shards.move_to_end(shard)
        return found

    def hashes(self, number: int) -> np.ndarray:
        found = self.cache.get(number)
        if found is not None:
            self.cache.move_to_end(number)
            return found
        shard = int(np.searchsorted(self.first, number, side="right")) - 1
        handle, offsets = self._shard(shard)
        start, end = offsets[number - int(self.first[shard]):][:2].tolist()
        found = shingle_hashes(os.pread(handle, end - start, start), self.ngram)
        self.cache[number] = found
        self.cached += len(found)
        while self.cached > CACHE_SHINGLES and len(self.cache) > 1:
            self.cached -= len(self.cache.popitem(last=False)[1])
        return found


def similar_pairs(texts: ShingleReader, first: np.ndarray, second: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each pair (first[k], second[k]) (first sorted) has shingle-set Jaccard >= threshold; the
    pairs of one first document are verified together."""
    similar = np.zeros(len(first), dtype=bool)
    bounds = np.flatnonzero(np.diff(first, prepend=-1, append=-1))
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        similar[start:end] = similar_to(texts.hashes(int(first[start])),
                                        [texts.hashes(j) for j in second[start:end].tolist()], threshold)
    return similar


def cluster(paths: Sequence[str], texts: ShingleReader, documents: int, threshold: float) -> tuple[np.ndarray, int, int]:
    """(root of every document, candidate pairs, verified merges): the components of the candidate pairs
    in `paths` whose shingle sets have Jaccard >= threshold. The pairs of a chunk whose ends the
    union-find has not joined before the chunk are verified; merges are counted as they join two
    components, so the counts do not depend on the chunking."""
    if documents >= 1 << 31:
        raise ValueError(f"documents: the dedup step numbers documents in int32, got {documents}")
    parent = np.arange(documents, dtype=np.int32)
    candidates = verified = 0
    for keys in merged_pairs(paths):
        candidates += len(keys)
        first, second = (keys >> _SHIFT).astype(np.int64), (keys & _LOW).astype(np.int64)
        apart = roots(parent, first) != roots(parent, second)
        first, second = first[apart], second[apart]
        similar = similar_pairs(texts, first, second, threshold)
        verified += join(parent, first[similar], second[similar])
    return roots(parent, np.arange(documents)), candidates, verified
