"""SemDeDup on planted embedding neighbours; the exact -> MinHash -> embedding hierarchy."""

import numpy as np
import pytest

from iquest_core.data.quality import semdedup
from iquest_core.data.quality.semdedup import (cluster_pairs, hierarchical_dedup, kmeans,
                                               semantic_duplicate_groups)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_planted_neighbours_are_grouped_and_nothing_else():
    rng = np.random.default_rng(0)
    base = _unit(rng.normal(size=(300, 32)))
    near = _unit(base[:20] + 0.05 * rng.normal(size=(20, 32)))  # cosine ~0.96-0.99 to their originals
    x = np.concatenate([base, near])
    planted = [[i, 300 + i] for i in range(20)]
    assert semantic_duplicate_groups(x, threshold=0.9, clusters=1) == planted
    clustered = semantic_duplicate_groups(x, threshold=0.9, clusters=6)  # a pair split by clusters is missed
    assert len(clustered) >= 15 and all(g in planted for g in clustered)
    assert semantic_duplicate_groups(x, threshold=0.999, clusters=6) == []


def test_kmeans_separates_well_separated_blobs():
    rng = np.random.default_rng(1)
    centers = np.eye(4, 16) * 10
    x = np.concatenate([c + rng.normal(size=(50, 16)) for c in centers])
    labels = kmeans(x, 4, seed=0)
    assert all(len(set(labels[i * 50:(i + 1) * 50])) == 1 for i in range(4))
    assert len(set(labels)) == 4


def test_hierarchy_assigns_each_removal_to_the_first_stage_that_finds_it():
    texts = ["def add(a, b):\n    return a + b\n",
             "def add(a, b):\n    return a + b\n",                              # exact copy of 0
             "def add(a, b):\n    return a + b  # sum\n",                       # near copy of 0
             "def plus(x, y):\n    return x + y\n",                              # renamed: semantic only
             "class Stack:\n    def push(self, item):\n        self.items.append(item)\n"]
    vectors = {0: [1, 0, 0], 3: [0.99, 0.1, 0], 4: [0, 0, 1]}
    embedded = []

    def embed(batch):
        embedded.append(len(batch))
        return np.array([vectors[texts.index(t) if texts.index(t) != 0 else 0] if t != texts[3] else vectors[3]
                         for t in batch], dtype=np.float32)

    removed = hierarchical_dedup(texts, embed, jaccard=0.5, cosine=0.95)
    assert removed == {1: (0, "exact"), 2: (0, "near"), 3: (0, "semantic")}
    assert embedded == [3]  # only the survivors of MinHash are embedded


def test_bad_arguments():
    with pytest.raises(ValueError, match="embeddings"):
        semantic_duplicate_groups(np.zeros(5))
    with pytest.raises(ValueError, match="threshold"):
        semantic_duplicate_groups(np.zeros((3, 2)), threshold=2)


def test_cluster_pairs_cross_block_boundaries(monkeypatch):
    monkeypatch.setattr(semdedup, "PAIR_BLOCK", 3)
    rows = _unit(np.array([[1, 0], [0, 1], [1, 0.01], [0, 1], [-1, 0], [1, 0]], dtype=np.float32))
    first, second = cluster_pairs(rows, 0.99)
    assert sorted(zip(first.tolist(), second.tolist())) == [(0, 2), (0, 5), (1, 3), (2, 5)]
