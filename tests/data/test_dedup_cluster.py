"""The dedup step's pair and cluster stages: runs of pairs merge into the sorted union chunk by chunk (never
more than a block of every run at once), a huge bucket is expanded row by row into the same pairs, and the
union-find gives the components of the verified pairs."""

import numpy as np

from iquest_core.data import dedup
from iquest_core.data.steps import dedup_cluster
from iquest_core.data.steps.dedup_cluster import PairRuns, ShingleReader, cluster, merged_pairs
from iquest_core.data.steps.shingle_hashes import shingle_hashes


def pair_set(paths):
    return {int(k) for p in paths for k in np.fromfile(p, dtype=np.uint64)}


def test_runs_merge_into_their_sorted_union_in_bounded_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup_cluster, "RUN_PAIRS", 50)
    monkeypatch.setattr(dedup_cluster, "MERGE_KEYS", 40)
    monkeypatch.setattr(dedup_cluster, "MIN_BLOCK", 4)
    rng = np.random.default_rng(0)
    paths = []
    for band in range(5):  # overlapping buckets in every band: the same pair comes from several bands
        runs = PairRuns(tmp_path / f"pairs-{band}")
        for _ in range(30):
            runs.add_bucket(np.unique(rng.integers(0, 60, size=rng.integers(2, 9))))
        count, band_paths = runs.close()
        assert len(band_paths) > 1 and count == sum(len(np.fromfile(p, np.uint64)) for p in band_paths)
        paths += band_paths
    chunks = list(merged_pairs(paths))
    merged = np.concatenate(chunks)
    assert merged.tolist() == sorted(pair_set(paths))  # sorted, no pair twice
    assert len(chunks) > 3 and max(map(len, chunks)) <= len(paths) * max(4, 40 // len(paths))


def test_a_huge_bucket_is_expanded_row_by_row_into_the_same_pairs(tmp_path, monkeypatch):
    ids = np.arange(0, 300, 3)
    whole = PairRuns(tmp_path / "whole")
    whole.add_bucket(ids)
    monkeypatch.setattr(dedup_cluster, "TRIANGLE_ROWS", 8)
    monkeypatch.setattr(dedup_cluster, "RUN_PAIRS", 500)
    rows = PairRuns(tmp_path / "rows")
    rows.add_bucket(ids)
    _, row_paths = rows.close()
    assert len(row_paths) > 5 and max(len(np.fromfile(p, np.uint64)) for p in row_paths) < 500 + len(ids)
    assert pair_set(row_paths) == pair_set(whole.close()[1]) and len(pair_set(row_paths)) == 100 * 99 // 2


class Texts:
    def __init__(self, texts):
        self.texts = texts

    def hashes(self, i):
        return shingle_hashes(self.texts[i].encode(), 5)


def test_cluster_joins_the_verified_pairs_and_keeps_the_smallest(tmp_path, monkeypatch):
    base = " ".join(f"word{i}" for i in range(200))
    other = " ".join(f"thing{i}" for i in range(100))
    texts = [base, "unrelated text " * 30, base + " tail", other, base + " tail two", other + " x"]
    runs = PairRuns(tmp_path / "pairs")
    runs.add_bucket(np.arange(6))  # every pair a candidate: only the verified ones may join
    paths = runs.close()[1]
    whole = cluster(paths, Texts(texts), 6, 0.8)  # one chunk: all pairs of a document verified together
    monkeypatch.setattr(dedup_cluster, "MERGE_KEYS", 2)
    monkeypatch.setattr(dedup_cluster, "MIN_BLOCK", 1)
    root, candidates, verified = cluster(paths, Texts(texts), 6, 0.8)
    assert root.tolist() == [0, 1, 0, 3, 0, 3]
    assert candidates == 15 and verified == 3  # merges: joins of two components, however the pairs are chunked
    assert whole[0].tolist() == root.tolist() and whole[1:] == (candidates, verified)


def test_shingle_reader_reads_each_document_and_keeps_a_bounded_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(dedup_cluster, "CACHE_SHINGLES", 300)
    monkeypatch.setattr(dedup_cluster, "OPEN_SHARDS", 2)
    shards = [[f"doc {s} {d} " + " ".join(f"w{k}" for k in range(30 * d)) for d in range(5)] for s in range(3)]
    for s, texts in enumerate(shards):
        data = [t.encode() for t in texts]
        (tmp_path / f"shard-{s:05d}.texts").write_bytes(b"".join(data))
        np.save(tmp_path / f"shard-{s:05d}.offsets.npy", np.cumsum([0] + [len(d) for d in data]))
    texts = [t for shard in shards for t in shard]
    with ShingleReader(tmp_path, np.array([0, 5, 10, 15]), 5) as reader:
        for number in [3, 14, 0, 7, 3, 12, 9, 14, 1]:
            assert reader.hashes(number).tolist() == shingle_hashes(texts[number].encode(), 5).tolist()
            assert len(reader.hashes(number)) == len(dedup.shingles(texts[number]))
            assert reader.cached == sum(map(len, reader.cache.values())) <= 300
            assert len(reader.shards) <= 2
        assert 1 < len(reader.cache) < 9
    assert not reader.shards  # closed
