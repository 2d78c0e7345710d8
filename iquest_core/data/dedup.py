"""Exact and near-duplicate detection for code documents.

Shingles: the tokens of a text are the maximal runs of bytes in [A-Za-z0-9_] or >= 0x80 of its UTF-8
encoding (identifiers, numbers, non-ASCII words; punctuation and whitespace separate them); its shingles
are the b" "-joined runs of `ngram` consecutive tokens (a text with fewer tokens has one shingle of all of
them; a text without tokens has none).

Near dedup: MinHash signatures from the C++ kernel (bit-identical to datasketch's MinHash updated with the
shingles, schemes "affine32" and "legacy"), candidates from datasketch's MinHashLSH (any of its storage
backends), every candidate pair verified by the exact Jaccard similarity of the shingle sets, groups =
connected components of the verified pairs. Keep one document per group: the smallest index.

LSH bands: with NUM_PERM = 128 permutations, (bands, rows) is the largest `rows` whose probability of making
a pair with Jaccard == threshold a candidate, 1 - (1 - threshold**rows)**bands with bands = 128 // rows,
is at least LSH_RECALL = 0.995 (threshold 0.8: 21 bands of 6 rows). Pairs above the threshold are
candidates with higher probability still.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from iquest_core.ops import minhash as minhash_op

NUM_PERM = 128
LSH_RECALL = 0.995
_TOKEN = re.compile(rb"[A-Za-z0-9_\x80-\xff]+")


def shingles(text: str, ngram: int = 5) -> set[bytes]:
    """The shingle set of `text` (rules in the module docstring)."""
    if not isinstance(text, str):
        raise ValueError(f"text: expected str, got {type(text).__name__}")
    _check_ngram(ngram)
    tokens = _TOKEN.findall(text.encode("utf-8"))
    if len(tokens) <= ngram:
        return {b" ".join(tokens)} if tokens else set()
    return {b" ".join(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1)}


@functools.lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    return np.asarray(a), np.asarray(b)


def minhash_signatures(texts: Sequence[str], *, num_perm: int = NUM_PERM, seed: int = 1, ngram: int = 5,
                       scheme: str = "affine32") -> np.ndarray:
    """(len(texts), num_perm) MinHash signatures: row i equals the `hashvalues` (same dtype: uint32 for
    "affine32", uint64 for "legacy") of datasketch's MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    updated with shingles(texts[i], ngram). Computed in C++, parallel over texts (torch's thread count)."""
    if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 1:
        raise ValueError(f"num_perm: expected an int >= 1, got {num_perm!r}")
    if scheme not in minhash_op.SCHEMES:
        raise ValueError(f"scheme: expected one of {sorted(minhash_op.SCHEMES)}, got {scheme!r}")
    _check_ngram(ngram)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts: expected str, got {type(text).__name__} at index {i}")
    a, b = _permutations(num_perm, seed, scheme)
    return minhash_op.minhash_signatures([t.encode("utf-8") for t in texts], a, b, ngram=ngram, scheme=scheme)


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) of the LSH index for `threshold` (rule in the module docstring)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold: expected a Jaccard similarity in (0, 1], got {threshold!r}")
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold ** rows) ** bands >= LSH_RECALL:
            return bands, rows
    return num_perm, 1


def near_duplicate_groups(texts: Sequence[str], *, threshold: float = 0.8, ngram: int = 5,
                          seed: int = 1) -> list[list[int]]:
    """Groups (sorted indices, size >= 2, ordered by first index) of texts whose shingle sets have Jaccard
    similarity >= threshold, joined transitively (connected components of the verified pairs)."""
    signatures = minhash_signatures(texts, seed=seed, ngram=ngram)
    return near_duplicate_groups_of_signatures(texts, signatures, threshold=threshold, ngram=ngram, seed=seed)


def near_duplicate_groups_of_signatures(texts: Sequence[str], signatures: np.ndarray, *, threshold: float,
                                        ngram: int, seed: int, scheme: str = "affine32",
                                        storage_config: dict | None = None) -> list[list[int]]:
    """near_duplicate_groups with precomputed `signatures` (minhash_signatures(texts, seed=seed,
    ngram=ngram, scheme=scheme)); storage_config goes to datasketch's MinHashLSH (e.g. Redis)."""
    if signatures.ndim != 2 or signatures.shape[0] != len(texts):
        raise ValueError(f"signatures: expected shape ({len(texts)}, num_perm), got {signatures.shape}")
    bands, rows = lsh_params(threshold, signatures.shape[1])
    lsh = MinHashLSH(num_perm=signatures.shape[1], params=(bands, rows), storage_config=storage_config)
    sketches = [LeanMinHash(seed=seed, hashvalues=row, scheme=scheme) for row in signatures]
    with lsh.insertion_session() as session:
        for i, sketch in enumerate(sketches):
            session.insert(i, sketch, check_duplication=False)
    cache: dict[int, set[bytes]] = {}

    def shingle_set(i: int) -> set[bytes]:
        if i not in cache:
            cache[i] = shingles(texts[i], ngram)
        return cache[i]

    parent = list(range(len(texts)))
    for i, sketch in enumerate(sketches):
        for j in lsh.query(sketch):
            if j > i and jaccard(shingle_set(i), shingle_set(j)) >= threshold:
                _union(parent, i, j)
    return _components(parent)


def exact_duplicate_groups(texts: Sequence[str]) -> list[list[int]]:
    """Groups (sorted indices, size >= 2, ordered by first index) of byte-identical texts (SHA-256 of the
    UTF-8 encoding)."""
    by_digest: dict[bytes, list[int]] = {}
    for i, text in enumerate(texts):
        by_digest.setdefault(hashlib.sha256(text.encode("utf-8")).digest(), []).append(i)
    return sorted(group for group in by_digest.values() if len(group) > 1)


def groups_of_pairs(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Groups (sorted indices, size >= 2, ordered by first index) of n items joined by `pairs`
    (connected components)."""
    parent = list(range(n))
    for i, j in pairs:
        _union(parent, i, j)
    return _components(parent)


def duplicates_to_drop(groups: Iterable[Sequence[int]]) -> set[int]:
    """The indices dedup removes: every member of each group except its smallest index (the one kept)."""
    return {i for group in groups for i in sorted(group)[1:]}


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1.0 for two empty sets."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _check_ngram(ngram: object) -> None:
    if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
        raise ValueError(f"ngram: expected an int >= 1, got {ngram!r}")


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], i: int, j: int) -> None:
    ri, rj = _find(parent, i), _find(parent, j)
    if ri != rj:
        parent[max(ri, rj)] = min(ri, rj)


def _components(parent: list[int]) -> list[list[int]]:
    members: dict[int, list[int]] = {}
    for i in range(len(parent)):
        members.setdefault(_find(parent, i), []).append(i)
    return sorted(group for group in members.values() if len(group) > 1)
