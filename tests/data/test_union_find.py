"""The shared union-find of the dedup cluster stage and SemDeDup, against a plain Python one."""

import numpy as np

from iquest_core.data.dedup import groups_of_pairs
from iquest_core.data.union_find import components, join, roots


def smallest_member(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    """The reference: each item's smallest component member, from dedup.groups_of_pairs."""
    root = list(range(n))
    for group in groups_of_pairs(n, pairs):
        for i in group:
            root[i] = group[0]
    return root


def test_components_keep_the_smallest_member_of_each_chain():
    first, second = np.array([5, 2, 7, 0]), np.array([7, 5, 9, 3])  # 2-5-7-9 and 0-3, 1 / 4 / 6 / 8 alone
    assert components(10, first, second).tolist() == [0, 1, 2, 0, 4, 2, 6, 2, 8, 2]
    assert components(3, np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == [0, 1, 2]


def test_random_pairs_in_any_batching_give_the_reference_components_and_join_counts():
    rng = np.random.default_rng(0)
    for n, m in ((2, 3), (30, 20), (200, 150), (1000, 2000)):
        first, second = rng.integers(0, n, m), rng.integers(0, n, m)
        pairs = list(zip(first.tolist(), second.tolist()))
        expected = smallest_member(n, pairs)
        merged = n - len(set(expected))
        assert components(n, first, second).tolist() == expected
        for batch in (1, 7, m):
            parent = np.arange(n, dtype=np.int32)  # int32 as the dedup cluster stage keeps it
            joins = sum(join(parent, first[k:k + batch], second[k:k + batch]) for k in range(0, m, batch))
            assert roots(parent, np.arange(n)).tolist() == expected
            assert joins == merged
            assert parent.dtype == np.int32


def test_one_batch_hooking_many_roots_on_each_other():
    # pairs (1, 48), (2, 47), ... and (k, k + 1): roots hooked on several others in the same batch
    n = 50
    first = np.concatenate([np.arange(1, n), np.arange(n - 1)])
    second = np.concatenate([np.arange(n - 1)[::-1], np.arange(1, n)])
    parent = np.arange(n)
    assert join(parent, first, second) == n - 1
    assert roots(parent, np.arange(n)).tolist() == [0] * n
    assert parent.tolist() == [0] * n  # the re-hooked items point at their root
