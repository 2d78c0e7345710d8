import numpy as np
import pytest

from iquest_core.data.quality.canonical import canonical_identifiers
from iquest_core.data.quality.semdedup import hierarchical_dedup

ORIGINAL = "def area(width, height):\n    # the product\n    return width * height + len('width')\n"
RENAMED = "def surface(w, h):\n    # the product\n    return w * h + len('width')\n"


def test_a_consistent_renaming_gives_the_same_canonical_text():
    assert canonical_identifiers(ORIGINAL, "python") == canonical_identifiers(RENAMED, "python") == \
        "def v0(v1, v2):\n    # the product\n    return v1 * v2 + v3('width')\n"  # strings, comments kept


def test_an_inconsistent_renaming_does_not():
    swapped = "def area(width, height):\n    # the product\n    return height * width + len('width')\n"
    assert canonical_identifiers(swapped, "python") != canonical_identifiers(ORIGINAL, "python")


@pytest.mark.parametrize("language, text, expected", [
    ("java", "class A { int f(int x) { return x + this.y; } }", "class v0 { int v1(int v2) { return v2 + this.v3; } }"),
    ("go", "func Add(a int, b int) int { return a + b }", "func v0(v1 v2, v3 v2) v2 { return v1 + v3 }"),
    ("python", "\ufeffx = 'é'\n", "\ufeffv0 = 'é'\n"),
])
def test_other_grammars_and_non_ascii(language, text, expected):
    assert canonical_identifiers(text, language) == expected


def test_preprocessed_hierarchy_finds_the_renamed_clone_as_an_exact_duplicate():
    texts = [ORIGINAL, RENAMED, "class Stack:\n    def push(self, item):\n        self.items.append(item)\n"]

    def embed(batch):
        return np.eye(3, dtype=np.float32)[:len(batch)]

    assert hierarchical_dedup(texts, embed) == {}
    assert hierarchical_dedup(texts, embed, preprocess=lambda t: canonical_identifiers(t, "python")) == {
        1: (0, "exact")}
