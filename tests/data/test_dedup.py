"""Near and exact dedup end to end on real files with planted duplicates: recall of the pairs whose
exact shingle Jaccard is >= the threshold, precision of the reported groups, deterministic keep-one."""

import random
import re

import pytest

from iquest_core.data import dedup
from tests.data.conftest import STDLIB

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def token_edits(text, rate, rng):
    """text with about `rate` of its identifiers replaced by random words (the rest kept byte for byte)."""
    return WORD.sub(lambda m: f"w{rng.randrange(10**6)}" if rng.random() < rate else m.group(0), text)


def exact_pairs(sets, threshold):
    """Every pair (i, j), i < j, with Jaccard >= threshold (exhaustive; size ratio bounds the Jaccard)."""
    order = sorted(range(len(sets)), key=lambda i: len(sets[i]))
    pairs = set()
    for x, i in enumerate(order):
        for j in order[x + 1:]:
            if len(sets[i]) < threshold * len(sets[j]):
                break
            if dedup.jaccard(sets[i], sets[j]) >= threshold:
                pairs.add((min(i, j), max(i, j)))
    return pairs


def grouped_pairs(groups):
    return {(a, b) for g in groups for x, a in enumerate(g) for b in g[x + 1:]}


@pytest.fixture(scope="module")
def planted():
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    paths = rng.sample(sorted(STDLIB.glob("*.py")), 150)
    texts = [p.read_text(encoding="utf-8") for p in paths]
    for i in rng.sample(range(len(texts)), 40):
        texts.append(token_edits(texts[i], rng.uniform(0.002, 0.035), rng))
    for i in rng.sample(range(len(texts)), 15):
        texts.append(texts[i])
    order = list(range(len(texts)))
    rng.shuffle(order)
    return seed, [texts[i] for i in order]


def test_near_duplicates_recall_and_precision(planted):
    seed, texts = planted
    sets = [dedup.shingles(t) for t in texts]
    truth = exact_pairs(sets, 0.8)
    assert len(truth) >= 30, f"seed {seed}: the planted corpus should hold many near-duplicate pairs"
    groups = dedup.near_duplicate_groups(texts, threshold=0.8)
    found = grouped_pairs(groups)
    recall = len(truth & found) / len(truth)
    assert recall >= 0.95, f"seed {seed}: recall {recall:.3f} of {len(truth)} pairs"
    below = [(a, b) for a, b in found - truth if dedup.jaccard(sets[a], sets[b]) < 0.8]
    # Groups are connected components: a pair below the threshold may only join through verified pairs.
    for a, b in below:
        group = next(g for g in groups if a in g)
        assert any((min(a, c), max(a, c)) in truth for c in group if c != a), f"seed {seed}: {a} joined unverified"


def test_groups_are_sorted_components_and_deterministic(planted):
    _, texts = planted
    groups = dedup.near_duplicate_groups(texts)
    assert groups == dedup.near_duplicate_groups(texts)
    assert all(len(g) >= 2 and g == sorted(g) for g in groups)
    assert [g[0] for g in groups] == sorted(g[0] for g in groups)
    members = [i for g in groups for i in g]
    assert len(members) == len(set(members))


def test_exact_duplicates(planted):
    _, texts = planted
    groups = dedup.exact_duplicate_groups(texts)
    assert sum(len(g) - 1 for g in groups) >= 15
    for g in groups:
        assert len({texts[i] for i in g}) == 1
    assert len({texts[g[0]] for g in groups}) == len(groups)
    assert dedup.exact_duplicate_groups(["a", "b", "a ", "a", "b"]) == [[0, 3], [1, 4]]


def test_duplicates_to_drop_keeps_the_first():
    assert dedup.duplicates_to_drop([[4, 1, 9], [2, 3]]) == {4, 9, 3}


def test_small_cases():
    base = " ".join(f"tok{i}" for i in range(200))
    edited = base.replace("tok100 ", "changed ")
    assert dedup.near_duplicate_groups([base, "unrelated text here", edited, base]) == [[0, 2, 3]]
    assert dedup.near_duplicate_groups([]) == []
    assert dedup.near_duplicate_groups(["", ""]) == [[0, 1]]  # two empty shingle sets: Jaccard 1


@pytest.mark.parametrize("threshold,expected", [(0.8, (21, 6)), (0.5, (42, 3))])
def test_lsh_params(threshold, expected):
    bands, rows = dedup.lsh_params(threshold)
    assert (bands, rows) == expected
    assert 1 - (1 - threshold**rows) ** bands >= dedup.LSH_RECALL


@pytest.mark.parametrize("threshold", [0.0, 1.5, -1])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="^threshold:"):
        dedup.near_duplicate_groups(["a"], threshold=threshold)


def test_bad_signatures():
    with pytest.raises(ValueError, match="^signatures:"):
        dedup.near_duplicate_groups_of_signatures(["a", "b"], dedup.minhash_signatures(["a"]), threshold=0.8,
                                                  ngram=5, seed=1)


@pytest.mark.parametrize("text", [None, b"def f(): pass", 3])
def test_shingles_want_str(text):
    with pytest.raises(ValueError, match="^text: expected str, got "):
        dedup.shingles(text)
