"""Embedding dedup (SemDeDup, Abbas et al. 2023) and the dedup hierarchy exact -> MinHash -> embedding.

    vectors = windows.embed_documents(model, [embedding_text(path, text) for ...])   # (n, 384) unit rows
    groups = semantic_duplicate_groups(vectors, threshold=0.95)
    removed = hierarchical_dedup(texts, embed)      # {index removed: (index kept, "exact"|"near"|"semantic")}

SemDeDup: unit-length embeddings are clustered by k-means (`fit_centers`: greedy k-means++ start, then
`iterations` Lloyd steps, seeded; `assign`: nearest center); within each cluster every pair with cosine
similarity >= threshold is a duplicate pair (`cluster_pairs`); groups are the connected components of
those pairs (`union_find.components`) and the smallest index of a group is kept. Pairs that fall in different
clusters are not compared (the price of the sub-quadratic search). The `semdedup` step of `iquest data run`
(data/steps/semdedup.py) runs the same functions over a corpus on disk.

What is embedded (`embedding_text`): the text of a code file (by extension, `syntax.language_of`) with the
names it binds replaced by their role (`canonical.canonical_locals`), so that clones whose locals were
renamed embed alike; other documents as they are. The `semdedup` step embeds it with
`windows.embed_documents(..., "mean")` (the mean over windows of the encoder's 256 word pieces, at most 8
spread over a longer text), so two long files that share their first lines do not embed alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from iquest_core.data import dedup, syntax
from iquest_core.data.quality.canonical import canonical_locals

DOCS_PER_CLUSTER = 100
PAIR_BLOCK = 1024


def unit(x: np.ndarray) -> np.ndarray:
    """The rows of x (float32) scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def fit_centers(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """k-means centers (min(k, n), d) of the rows of x (squared Euclidean), greedy k-means++ initialisation
    (2 + log k candidates per center, the one lowering the potential most), then Lloyd steps."""
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
    for _ in range(iterations):
        labels = assign(x, centers)
        for c in range(k):
            members = x[labels == c]
            if len(members):
                centers[c] = members.mean(0)
    return centers


def assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The index (int64) of the nearest center of each row of x."""
    return np.argmax(x @ centers.T - 0.5 * (centers ** 2).sum(1), axis=1)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Cluster labels (n,) of the rows of x: `assign(x, fit_centers(x, k, ...))`."""
    return assign(x, fit_centers(x, k, seed=seed, iterations=iterations))


def cluster_pairs(rows: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, row indices (int64 arrays) of every pair of unit `rows` with cosine >= threshold;
    holds a PAIR_BLOCK x len(rows) block of similarities at a time."""
    first, second = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(rows), PAIR_BLOCK):
        i, j = np.nonzero(rows[start:start + PAIR_BLOCK] @ rows.T >= threshold)
        above = j > start + i
        first.append(start + i[above])
        second.append(j[above])
    return np.concatenate(first), np.concatenate(second)


def check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a cosine similarity in [-1, 1], got {threshold!r}")


def semantic_duplicate_groups(embeddings: np.ndarray, *, threshold: float = 0.95, clusters: int | None = None,
                              seed: int = 0, iterations: int = 20) -> list[list[int]]:
    """Groups (sorted indices, size >= 2) of rows whose cosine similarity >= threshold within a k-means
    cluster (clusters: default one per DOCS_PER_CLUSTER rows)."""
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings: expected a (n, d) array, got shape {x.shape}")
    check_threshold(threshold)
    if len(x) < 2:
        return []
    x = unit(x)
    labels = kmeans(x, clusters or max(1, len(x) // DOCS_PER_CLUSTER), seed=seed, iterations=iterations)
    pairs = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        first, second = cluster_pairs(x[members], threshold)
        pairs.extend(zip(members[first].tolist(), members[second].tolist()))
    return dedup.groups_of_pairs(len(x), pairs)


def embedding_text(path: str, text: str, *, canonical: bool = True) -> str:
    """What SemDeDup embeds of a document: a code file's text with its bound names replaced by role
    (canonical_locals) when `canonical`, else the text itself (module docstring)."""
    language = syntax.language_of(path)
    return canonical_locals(text, language) if canonical and language else text


def hierarchical_dedup(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], *,
                       jaccard: float = 0.8, cosine: float = 0.95, ngram: int = 5, seed: int = 1,
                       preprocess: Callable[[str], str] | None = None) -> dict[int, tuple[int, str]]:
    """{removed index: (kept index, stage)} after exact dedup, then MinHash-LSH near dedup of the
    survivors, then SemDeDup of the survivors of that (only those are embedded: `embed` gets their texts,
    the raw ones). `preprocess` (e.g. canonical.canonical_identifiers) maps every text before the exact and
    MinHash stages."""
    keys = [preprocess(text) for text in texts] if preprocess is not None else list(texts)
    removed: dict[int, tuple[int, str]] = {}
    alive = list(range(len(texts)))
    stages = (("exact", lambda idx: dedup.exact_duplicate_groups([keys[i] for i in idx])),
              ("near", lambda idx: dedup.near_duplicate_groups([keys[i] for i in idx], threshold=jaccard,
                                                               ngram=ngram, seed=seed)),
              ("semantic", lambda idx: semantic_duplicate_groups(embed([texts[i] for i in idx]), threshold=cosine,
                                                                 seed=seed)))
    for stage, groups_of in stages:
        for group in groups_of(alive):
            for j in group[1:]:
                removed[alive[j]] = (alive[group[0]], stage)
        alive = [i for i in alive if i not in removed]
    return removed
