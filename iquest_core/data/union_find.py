"""Connected components of numbered items joined by pairs: a union-find as a numpy parent array, joined
a batch of pairs at a time (vectorised, no Python loop over pairs).

    parent = np.arange(n, dtype=np.int32)   # every item its own component
    joins = join(parent, first, second)     # pairs (first[k], second[k]); components merged
    root = roots(parent, np.arange(n))      # each item's root: the smallest member of its component
    root = components(n, first, second)     # the same from one batch

A join hooks the larger root on the smaller, so a root is always its component's smallest member and
the result does not depend on the order or the batching of the pairs.
"""

from __future__ import annotations

import numpy as np


def roots(parent: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The root of each of `items` (pointer chasing over all of them at once)."""
    found = parent[items]
    while True:
        above = parent[found]
        if np.array_equal(above, found):
            return found
        found = above


def join(parent: np.ndarray, first: np.ndarray, second: np.ndarray) -> int:
    """Join the components of each pair (first[k], second[k]) in `parent` (in place); returns by how many
    the number of components fell. The roots the batch re-hooked point straight at their new roots."""
    a, b = roots(parent, first), roots(parent, second)
    apart = a != b
    a, b = a[apart], b[apart]
    touched = np.unique(np.concatenate([a, b]))  # roots at the start; they only ever point at each other
    while len(a):
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))  # a root hooked on several: the smallest
        flatten(parent, touched)
        a, b = parent[a], parent[b]
        apart = a != b
        a, b = a[apart], b[apart]
    return len(touched) - len(np.unique(parent[touched]))


def flatten(parent: np.ndarray, items: np.ndarray) -> None:
    """Point each of `items` at its root by pointer jumping (log-depth rounds), where every item's path
    stays within `items`."""
    while not np.array_equal(up := parent[parent[items]], parent[items]):
        parent[items] = up


def components(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The smallest member of the component of each of n items joined by the pairs (first[k], second[k])."""
    parent = np.arange(n)
    join(parent, np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64))
    return roots(parent, np.arange(n))
