"""Shingle hashes stand for dedup.shingles: one distinct hash per distinct shingle (so the same set sizes
and intersections), and similar_to gives dedup.jaccard's verdicts, even at a threshold equal to the
Jaccard itself."""

import numpy as np
import pytest

from iquest_core.data import dedup
from iquest_core.data.steps.shingle_hashes import shingle_hashes, similar_to


def texts():
    rng = np.random.default_rng(0)
    words = [f"w{k}" for k in range(40)] + ["é", "名前", "_x9", "A"]
    base = [str(rng.choice(words)) for _ in range(300)]
    found = ["", "   ;; ", "one", "a b", "a b c d", "a b c d e", "a  b\tc(d) e", "a b c d e f",
             " ".join(base), "x" * 70_000 + " y " + "x" * 70_000, "ab" * 40_000]  # tokens past 2^16 bytes
    for edits in (1, 5, 20, 60):
        copy = list(base)
        for k in rng.integers(0, len(copy), edits):
            copy[k] = str(rng.choice(words))
        found.append(" ".join(copy))
    return found


@pytest.mark.parametrize("ngram", [1, 3, 5])
def test_hashes_are_one_per_distinct_shingle(ngram):
    for text in texts():
        hashes = shingle_hashes(text.encode(), ngram)
        assert hashes.dtype == np.uint64 and np.all(hashes[1:] > hashes[:-1])
        assert len(hashes) == len(dedup.shingles(text, ngram))


def test_the_same_shingle_has_the_same_hash_wherever_it_is():
    a, b = shingle_hashes(b"alpha beta gamma delta eps", 5), shingle_hashes(b"zz; alpha  beta\ngamma(delta) eps !", 5)
    assert len(np.intersect1d(a, b)) == 1
    assert not len(np.intersect1d(shingle_hashes(b"ab c", 5), shingle_hashes(b"a bc", 5)))  # token bounds count


def test_verdicts_equal_exact_jaccard_on_both_sides_of_the_threshold():
    items = texts()
    sets = [dedup.shingles(t) for t in items]
    hashes = [shingle_hashes(t.encode(), 5) for t in items]
    compared = 0
    for i in range(len(items)):
        for j in range(len(items)):
            exact = dedup.jaccard(sets[i], sets[j])
            for threshold in {exact, np.nextafter(exact, 2.0), 0.8}:
                assert similar_to(hashes[i], [hashes[j]], threshold).tolist() == [exact >= threshold], (i, j)
            compared += 0.0 < exact < 1.0
    assert compared > 10  # partial overlaps, not only identical and disjoint pairs
    batch = similar_to(hashes[8], hashes, 0.5).tolist()
    assert batch == [dedup.jaccard(sets[8], s) >= 0.5 for s in sets] and sum(batch) > 2
    assert similar_to(hashes[8], [], 0.5).tolist() == []
