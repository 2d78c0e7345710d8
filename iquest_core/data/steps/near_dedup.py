"""The `dedup` step: exact and MinHash-LSH near-duplicate removal in stages on disk, for corpora of any size.

Same result as the in-memory `iquest_core.data.dedup` (exact groups by SHA-256 first, then near groups
among the remaining documents: shingle-set Jaccard >= threshold, LSH candidates verified exactly, groups =
connected components; each group keeps its first document in input order), computed as:

1. collect, per shard: the SHA-256 of each document, its MinHash signature (C++ kernel), and its UTF-8
   text (for verification) -> STATE/shard-N.{digests,band-B}.npy, .texts, .offsets.npy (and the
   documents' [path, repo] -> .names.json, for the `removed` report). Each row carries
   the document's global id (shard << 32 | index), so input order is id order.
2. exact, per slice of digest space: digests of every shard in the slice (each shard's file is sorted, so
   a slice is a searchsorted range), runs of equal digests -> (dropped id, kept id) -> STATE/exact.npy.
3. bands, per LSH band: band keys (exact values of the band's `rows` signature entries, with a 64-bit
   mix of them as the sort key) of every shard, slice by slice of mix space, minus exact duplicates;
   every pair of ids sharing a key -> STATE/pairs-B.npy (sorted, unique).
4. cluster: the union of all bands' pairs in id order, each verified by exact Jaccard of the shingle
   sets (texts read from the shard text files, two sets in memory at a time) unless union-find already
   joined it; each
   component keeps its smallest id -> STATE/shard-N.drops.npy (index, kept id, kind 0 exact / 1 near);
   with `removed`, a JSONL report of every dropped document and the one kept in its place.
5. run (the filter pass), per shard: drops the listed documents; outcomes "dedup:kept",
   "dedup:dropped:exact", "dedup:dropped:near".

Memory: collect holds one shard's signatures; exact and bands hold one slice of at most SLICE_ROWS rows;
cluster holds the candidate pairs and a union-find over the documents in them (both grow with the
number of near duplicates, not with the corpus), the per-shard offsets and two shingle sets.
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
        total = sum(len(np.load(state / f"shard-{i:05d}.offsets.npy", mmap_mode="r")) - 1 for i in range(n))
        slices = max(1, -(-total // SLICE_ROWS))
        exact = np.concatenate(job.map(functools.partial(_exact_slice, str(state), n, slices), list(range(slices)),
                                       "dedup exact") or [np.zeros((0, 2), np.uint64)])
        save(state / "exact.npy", exact[np.argsort(exact[:, 0])] if len(exact) else exact)
        pair_counts = job.map(functools.partial(_band_pairs, str(state), n, slices), list(range(self.bands)),
                              "dedup bands")
        return _cluster(self, state, n, exact) + Counter({"dedup:candidate_pairs_by_band": sum(pair_counts)})

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


def _exact_slice(state: str, n: int, slices: int, k: int) -> np.ndarray:
    """(dropped id, kept id) of the exact duplicates whose digest falls in slice k."""
    rows = _slice_rows(state, n, "{shard}.digests.npy", *_bounds(slices, k))
    found = []
    for start, end in runs(rows[:, :4]):
        ids = np.sort(rows[start:end, 4])
        found += [(int(gid), int(ids[0])) for gid in ids[1:]]
    return np.asarray(found, dtype=np.uint64).reshape(-1, 2)


def _band_pairs(state: str, n: int, slices: int, band: int) -> int:
    """Writes the sorted unique candidate pairs (id, id) of one band, exact duplicates left out."""
    exact = np.load(Path(state) / "exact.npy")[:, 0]
    pairs = []
    for k in range(slices):
        rows = _slice_rows(state, n, f"{{shard}}.band-{band}.npy", *_bounds(slices, k))
        rows = rows[~np.isin(rows[:, -1], exact)] if len(exact) and len(rows) else rows
        for start, end in runs(rows[:, :-1]):
            ids = np.sort(rows[start:end, -1])
            first, second = np.triu_indices(len(ids), 1)
            pairs.append(np.column_stack([ids[first], ids[second]]))
    found = np.unique(np.concatenate(pairs), axis=0) if pairs else np.zeros((0, 2), np.uint64)
    save(Path(state) / f"pairs-{band}.npy", found)
    return len(found)


class _Texts:
    """Shingle sets of documents by global id, read from the shard text files."""

    def __init__(self, state: Path, ngram: int) -> None:
        self.state, self.ngram, self.offsets = state, ngram, {}

    def shingles(self, gid: int) -> set[bytes]:
        shard, index = gid >> 32, gid & 0xFFFFFFFF
        if shard not in self.offsets:
            self.offsets[shard] = np.load(self.state / f"shard-{shard:05d}.offsets.npy")
        start, end = self.offsets[shard][index:index + 2]
        with open(self.state / f"shard-{shard:05d}.texts", "rb") as handle:
            handle.seek(int(start))
            return dedup.shingles(handle.read(int(end - start)).decode("utf-8"), self.ngram)


def write_removed(path: Path, state: Path, drops: dict[int, list[tuple[int, int, int]]]) -> None:
    """JSONL {"path", "repo", "kind", "kept_path", "kept_repo"} per dropped document, in input order."""
    names = functools.lru_cache(maxsize=8)(lambda shard: json.loads((state / f"shard-{shard:05d}.names.json").read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for shard in sorted(drops):
            for index, kept, kind in sorted(drops[shard]):
                (p, repo), (kept_p, kept_repo) = names(shard)[index], names(kept >> 32)[kept & 0xFFFFFFFF]
                record = {"path": p, "repo": repo, "kind": ("exact", "near")[kind], "kept_path": kept_p,
                          "kept_repo": kept_repo}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _cluster(step: NearDedup, state: Path, n: int, exact: np.ndarray) -> Counter[str]:
    bands = [np.load(state / f"pairs-{b}.npy") for b in range(step.bands)]
    pairs = np.unique(np.concatenate(bands), axis=0) if bands else np.zeros((0, 2), np.uint64)
    del bands
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    texts, verified, current, current_set = _Texts(state, step.ngram), 0, None, set()
    for i, j in pairs.tolist():  # sorted by i: one shingle set of i per run, one of j at a time
        parent.setdefault(i, i)
        parent.setdefault(j, j)
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        if i != current:
            current, current_set = i, texts.shingles(i)
        if dedup.jaccard(current_set, texts.shingles(j)) >= step.threshold:
            parent[max(ri, rj)] = min(ri, rj)
            verified += 1
    members: dict[int, list[int]] = {}
    for i in parent:
        members.setdefault(find(i), []).append(i)
    groups = [g for g in members.values() if len(g) > 1]
    drops: dict[int, list[tuple[int, int, int]]] = {i: [] for i in range(n)}
    for dropped, kept in exact.tolist():
        drops[dropped >> 32].append((dropped & 0xFFFFFFFF, kept, 0))
    for group in groups:
        kept = min(group)
        for gid in group:
            if gid != kept:
                drops[gid >> 32].append((gid & 0xFFFFFFFF, kept, 1))
    for shard, rows in drops.items():
        save(state / f"shard-{shard:05d}.drops.npy", np.asarray(sorted(rows), dtype=np.uint64).reshape(-1, 3))
    if step.removed:
        write_removed(Path(step.removed), state, drops)
    return Counter({"dedup:exact_duplicate_groups": len({k for _, k in exact.tolist()}),
                    "dedup:near_duplicate_groups": len(groups), "dedup:candidate_pairs": len(pairs),
                    "dedup:verified_merges": verified})
