"""The `dedup` step: exact and MinHash-LSH near-duplicate removal in stages on disk, for corpora of any size.

Same result as the in-memory `iquest_core.data.dedup` (exact groups by SHA-256 first, then near groups
among the remaining documents: shingle-set Jaccard >= threshold, LSH candidates verified exactly, groups =
connected components; each group keeps its first document in input order), computed as:

1. collect, per shard: the SHA-256 of each document, its MinHash signature (C++ kernel), and its UTF-8
   text (for verification) -> STATE/shard-N.{digests,band-B}.npy, .texts, .offsets.npy (and the
   documents' [path, repo] -> .names.json, for the `removed` report). Each row carries
   the document's global id (shard << 32 | index). The later stages number documents in input order
   over the whole job (shard by shard, from the shards' counts) and pair and cluster those numbers.
2. exact, per slice of digest space: digests of every shard in the slice (each shard's file is sorted, so
   a slice is a searchsorted range), runs of equal digests -> (dropped, kept) numbers -> STATE/exact.npy.
3. bands, per LSH band: band keys (exact values of the band's `rows` signature entries, with a 64-bit
   mix of them as the sort key) of every shard, slice by slice of mix space, minus exact duplicates;
   every pair of documents sharing a key -> sorted runs STATE/pairs-B-R.bin (dedup_cluster.PairRuns).
4. cluster: the runs of all bands merged as one sorted stream in chunks, each pair verified by the exact
   Jaccard of the shingle sets as sorted 64-bit hash arrays (from the shard text files, a bounded cache of
   arrays) unless the union-find already joined it; each component keeps its smallest number ->
   STATE/shard-N.drops.npy (index, kept number, kind 0 exact / 1 near); with `removed`, a JSONL report
   of every dropped document and the one kept in its place.
5. run (the filter pass), per shard: drops the listed documents; outcomes "dedup:kept",
   "dedup:dropped:exact", "dedup:dropped:near".

Memory: collect holds one shard's signatures; exact and bands hold one slice of at most SLICE_ROWS rows
and at most dedup_cluster.RUN_PAIRS pairs; cluster holds one merge chunk of pairs, a bounded cache of
shingle-hash arrays and what grows with the corpus: a union-find parent per document (4 bytes) and the
exact duplicates' numbers (16 bytes each).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from iquest_core.atomic_io import atomic_path, write_atomic
from iquest_core.data import dedup
from iquest_core.data.steps import Doc, ShardContext, register
from iquest_core.data.steps.dedup_cluster import PairRuns, ShingleReader, cluster

BATCH = 256
SLICE_ROWS = 1 << 18
_MIX = np.uint64(0x9E3779B97F4A7C15)


def save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def band_mix(keys: np.ndarray) -> np.ndarray:
    """A 64-bit mix of each row of `keys` (uint64), spread over the whole range (slices of equal width
    hold similar numbers of rows even though MinHash values crowd near 0)."""
    h = np.zeros(len(keys), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in keys.T:
            h = (h ^ column) * _MIX
            h ^= h >> np.uint64(29)
    return h


def sorted_rows(rows: np.ndarray) -> np.ndarray:
    """rows sorted by their columns, first column first."""
    return rows[np.lexsort(rows.T[::-1])] if len(rows) else rows


def runs(keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """[start, end) of each run of >= 2 equal rows in sorted `keys`."""
    if len(keys) < 2:
        return
    change = np.flatnonzero(np.any(keys[1:] != keys[:-1], axis=1)) + 1
    bounds = np.concatenate(([0], change, [len(keys)]))
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end - start >= 2:
            yield int(start), int(end)


@register
@dataclass
class NearDedup:
    name: ClassVar[str] = "dedup"
    threshold: float = 0.8
    ngram: int = 5
    minhash_seed: int = 1
    removed: str | None = None  # a JSONL file listing each dropped document and the one kept in its place

    def __post_init__(self) -> None:
        self.bands, self.rows = dedup.lsh_params(self.threshold)
        dedup.shingles("", self.ngram)  # validates ngram

    def collect(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        state, stem = ctx.state_dir, ctx.name
        digests, signatures, offsets, names = [], [], [0], []
        with atomic_path(state / f"{stem}.texts") as tmp, open(tmp, "wb") as texts:
            batch: list[Doc] = []
            for doc in docs:
                batch.append(doc)
                names.append([doc["path"], doc.get("repo")])
                if len(batch) == BATCH:
                    yield from self._collect_batch(batch, texts, digests, signatures, offsets)
                    batch = []
            yield from self._collect_batch(batch, texts, digests, signatures, offsets)
        ids = (np.uint64(ctx.shard) << np.uint64(32)) + np.arange(len(digests), dtype=np.uint64)
        words = np.frombuffer(b"".join(digests), dtype=">u8").reshape(-1, 4).astype(np.uint64)
        save(state / f"{stem}.digests.npy", sorted_rows(np.column_stack([words, ids])))
        save(state / f"{stem}.offsets.npy", np.asarray(offsets, dtype=np.int64))
        write_atomic(state / f"{stem}.names.json", json.dumps(names))
        signature = np.concatenate(signatures) if signatures else np.zeros((0, dedup.NUM_PERM), np.uint32)
        for band in range(self.bands):
            keys = signature[:, band * self.rows:(band + 1) * self.rows].astype(np.uint64)
            save(state / f"{stem}.band-{band}.npy", sorted_rows(np.column_stack([band_mix(keys), keys, ids])))

    def _collect_batch(self, batch, texts, digests, signatures, offsets) -> list[Doc]:
        encoded = [doc["content"].encode("utf-8") for doc in batch]
        for data in encoded:
            digests.append(hashlib.sha256(data).digest())
            texts.write(data)
            offsets.append(offsets[-1] + len(data))
        if batch:
            signatures.append(dedup.minhash_signatures([d["content"] for d in batch], seed=self.minhash_seed,
                                                       ngram=self.ngram))
        return batch

    def reduce(self, job) -> Counter[str]:
        state, n = job.state_dir, job.num_shards
        counts = [len(np.load(state / f"shard-{i:05d}.offsets.npy", mmap_mode="r")) - 1 for i in range(n)]
        first = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        slices = max(1, -(-int(first[-1]) // SLICE_ROWS))
        exact = np.concatenate(job.map(functools.partial(_exact_slice, str(state), n, slices, first),
                                       list(range(slices)), "dedup exact") or [np.zeros((0, 2), np.int64)])
        exact = exact[np.argsort(exact[:, 0])]
        save(state / "exact.npy", exact)
        bands = job.map(functools.partial(_band_pairs, str(state), n, slices, first), list(range(self.bands)),
                        "dedup bands")
        runs_of_bands = [path for _, paths in bands for path in paths]
        with ShingleReader(state, first, self.ngram) as texts:
            root, candidates, verified = cluster(runs_of_bands, texts, int(first[-1]), self.threshold)
        write_drops(state, first, root, exact)
        if self.removed:
            write_removed(Path(self.removed), state, first)
        joined = root != np.arange(len(root), dtype=root.dtype)
        return Counter({"dedup:exact_duplicate_groups": len(np.unique(exact[:, 1])),
                        "dedup:near_duplicate_groups": len(np.unique(root[joined])),
                        "dedup:candidate_pairs": candidates, "dedup:verified_merges": verified,
                        "dedup:candidate_pairs_by_band": sum(count for count, _ in bands)})

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        drops = np.load(ctx.state_dir / f"{ctx.name}.drops.npy")
        kind_of = {int(i): int(k) for i, _, k in drops}
        for index, doc in enumerate(docs):
            kind = kind_of.get(index)
            if kind is None:
                ctx.count("dedup:kept")
                yield doc
            else:
                ctx.count("dedup:dropped:exact" if kind == 0 else "dedup:dropped:near")


def _slice_rows(state: str, n: int, pattern: str, lo: int, hi: int) -> np.ndarray:
    """Rows of every shard's sorted file `pattern` whose first column is in [lo, hi)."""
    parts = []
    for i in range(n):
        rows = np.load(Path(state) / pattern.format(shard=f"shard-{i:05d}"), mmap_mode="r")
        a = int(np.searchsorted(rows[:, 0], np.uint64(lo)))
        b = len(rows) if hi >= 1 << 64 else int(np.searchsorted(rows[:, 0], np.uint64(hi)))
        parts.append(np.array(rows[a:b]))
    return sorted_rows(np.concatenate(parts)) if parts else np.zeros((0, 1), np.uint64)


def _bounds(slices: int, k: int) -> tuple[int, int]:
    width = -(-(1 << 64) // slices)
    return k * width, min((k + 1) * width, 1 << 64)


def numbers(gids: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Document numbers (input order over the whole job) of global ids (shard << 32 | index)."""
    return first[(gids >> np.uint64(32)).astype(np.int64)] + (gids & np.uint64(0xFFFFFFFF)).astype(np.int64)


def _exact_slice(state: str, n: int, slices: int, first: np.ndarray, k: int) -> np.ndarray:
    """(dropped, kept) document numbers of the exact duplicates whose digest falls in slice k."""
    rows = _slice_rows(state, n, "{shard}.digests.npy", *_bounds(slices, k))
    found = [np.zeros((0, 2), np.int64)]
    for start, end in runs(rows[:, :4]):
        ids = np.sort(numbers(rows[start:end, 4], first))
        found.append(np.column_stack([ids[1:], np.full(len(ids) - 1, ids[0])]))
    return np.concatenate(found)


def _band_pairs(state: str, n: int, slices: int, first: np.ndarray, band: int) -> tuple[int, list[str]]:
    """Writes the candidate pairs of one band (documents sharing its key, exact duplicates left out) as
    sorted runs; (pairs, run paths)."""
    exact = np.load(Path(state) / "exact.npy")[:, 0]
    pairs = PairRuns(Path(state) / f"pairs-{band}")
    for k in range(slices):
        rows = _slice_rows(state, n, f"{{shard}}.band-{band}.npy", *_bounds(slices, k))
        ids = numbers(rows[:, -1], first)
        fresh = ~np.isin(ids, exact)
        keys, ids = rows[fresh, :-1], ids[fresh]
        for start, end in runs(keys):
            pairs.add_bucket(np.sort(ids[start:end]))
    return pairs.close()


def write_drops(state: Path, first: np.ndarray, root: np.ndarray, exact: np.ndarray) -> None:
    """STATE/shard-N.drops.npy: (index in the shard, kept document number, kind 0 exact / 1 near) of each
    document the filter pass drops, by index."""
    for shard in range(len(first) - 1):
        lo, hi = int(first[shard]), int(first[shard + 1])
        near = np.flatnonzero(root[lo:hi] != np.arange(lo, hi))
        a, b = np.searchsorted(exact[:, 0], [lo, hi])
        rows = np.concatenate([np.column_stack([exact[a:b, 0] - lo, exact[a:b, 1], np.zeros(b - a, np.int64)]),
                               np.column_stack([near, root[lo:hi][near], np.ones(len(near), np.int64)])])
        save(state / f"shard-{shard:05d}.drops.npy", rows[np.argsort(rows[:, 0])].astype(np.int64))


def write_removed(path: Path, state: Path, first: np.ndarray) -> None:
    """JSONL {"path", "repo", "kind", "kept_path", "kept_repo"} per dropped document, in input order."""
    names = functools.lru_cache(maxsize=8)(lambda shard: json.loads((state / f"shard-{shard:05d}.names.json").read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for shard in range(len(first) - 1):
            for index, kept, kind in np.load(state / f"shard-{shard:05d}.drops.npy").tolist():
                kept_shard = int(np.searchsorted(first, kept, side="right")) - 1
                (p, repo), (kept_p, kept_repo) = names(shard)[index], names(kept_shard)[kept - int(first[kept_shard])]
                record = {"path": p, "repo": repo, "kind": ("exact", "near")[kind], "kept_path": kept_p,
                          "kept_repo": kept_repo}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
