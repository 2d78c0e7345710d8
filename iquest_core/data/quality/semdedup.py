"""Embedding dedup (SemDeDup, Abbas et al. 2023) and the dedup hierarchy exact -> MinHash -> embedding.

    groups = semantic_duplicate_groups(embeddings, threshold=0.95)
    removed = hierarchical_dedup(texts, embed)      # {index removed: (index kept, "exact"|"near"|"semantic")}

SemDeDup: unit-length embeddings are clustered by k-means (greedy k-means++ start, `iterations` Lloyd steps,
seeded); within each cluster every pair with cosine similarity >= threshold is a duplicate pair; groups
are the connected components of those pairs and the smallest index of a group is kept. Pairs that fall in
different clusters are not compared (the price of the sub-quadratic search).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from iquest_core.data import dedup

DOCS_PER_CLUSTER = 100


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Cluster labels (n,) of the rows of x by k-means (squared Euclidean), greedy k-means++ initialisation
    (2 + log k candidates per center, the one lowering the potential most)."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    k = max(1, min(k, n))
    centers = [x[rng.integers(n)]]
    distance = ((x - centers[0]) ** 2).sum(1)
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        total = distance.sum()
        candidates = rng.choice(n, size=trials, p=distance / total) if total > 0 else rng.integers(n, size=1)
        reduced = [np.minimum(distance, ((x - x[c]) ** 2).sum(1)) for c in candidates]
        best = int(np.argmin([r.sum() for r in reduced]))
        centers.append(x[candidates[best]])
        distance = reduced[best]
    centers = np.stack(centers)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmax(x @ centers.T - 0.5 * (centers ** 2).sum(1), axis=1)
        for c in range(k):
            members = x[labels == c]
            if len(members):
                centers[c] = members.mean(0)
    return labels


def semantic_duplicate_groups(embeddings: np.ndarray, *, threshold: float = 0.95, clusters: int | None = None,
                              seed: int = 0, iterations: int = 20) -> list[list[int]]:
    """Groups (sorted indices, size >= 2) of rows whose cosine similarity >= threshold within a k-means
    cluster (clusters: default one per DOCS_PER_CLUSTER rows)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings: expected a (n, d) array, got shape {x.shape}")
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a cosine similarity in [-1, 1], got {threshold!r}")
    if len(x) < 2:
        return []
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = kmeans(x, clusters or max(1, len(x) // DOCS_PER_CLUSTER), seed=seed, iterations=iterations)
    pairs = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        similar = np.triu(x[members] @ x[members].T >= threshold, k=1)
        pairs.extend((int(members[i]), int(members[j])) for i, j in zip(*np.nonzero(similar)))
    return dedup.groups_of_pairs(len(x), pairs)


def hierarchical_dedup(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], *,
                       jaccard: float = 0.8, cosine: float = 0.95, ngram: int = 5, seed: int = 1,
                       preprocess: Callable[[str], str] | None = None) -> dict[int, tuple[int, str]]:
    """{removed index: (kept index, stage)} after exact dedup, then MinHash-LSH near dedup of the
    survivors, then SemDeDup of the survivors of that (only those are embedded). `preprocess` (e.g.
    canonical.canonical_identifiers) maps every text before all three stages."""
    if preprocess is not None:
        texts = [preprocess(text) for text in texts]
    removed: dict[int, tuple[int, str]] = {}
    alive = list(range(len(texts)))
    stages = (("exact", lambda idx: dedup.exact_duplicate_groups([texts[i] for i in idx])),
              ("near", lambda idx: dedup.near_duplicate_groups([texts[i] for i in idx], threshold=jaccard,
                                                               ngram=ngram, seed=seed)),
              ("semantic", lambda idx: semantic_duplicate_groups(embed([texts[i] for i in idx]), threshold=cosine,
                                                                 seed=seed)))
    for stage, groups_of in stages:
        for group in groups_of(alive):
            for j in group[1:]:
                removed[alive[j]] = (alive[group[0]], stage)
        alive = [i for i in alive if i not in removed]
    return removed
