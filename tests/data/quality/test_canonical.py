import numpy as np
import pytest

from iquest_core.data.quality.canonical import canonical_identifiers, canonical_locals
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


LOCALS = "def area(width, height):\n    scale = self.scale\n    return len(width) * height * scale\n"


def test_canonical_locals_replaces_bound_names_by_role_and_keeps_the_rest():
    assert canonical_locals(LOCALS, "python") == \
        "def F(V, V):\n    V = self.scale\n    return len(V) * V * V\n"  # self is free here, len and .scale kept
    renamed_reordered = "def surface(h, w):\n    s = self.scale\n    return len(h) * w * s\n"
    assert canonical_locals(renamed_reordered, "python") == canonical_locals(LOCALS, "python")
    other_attribute = LOCALS.replace("self.scale", "self.factor")
    assert canonical_locals(other_attribute, "python") != canonical_locals(LOCALS, "python")


@pytest.mark.parametrize("language, text, expected", [
    ("python", "def f(a, *b, c=1, **d):\n    x, (y, z) = g(k=a)\n    for i in x: w = i\n    [q for q in b]\n"
               "    with o as p: pass\n",
     "def F(V, *V, V=1, **V):\n    V, (V, V) = g(k=V)\n    for V in V: V = V\n    [V for V in V]\n"
     "    with o as V: pass\n"),
    ("java", "class A { int f(int x) { int z = x; for (int i : ys) {} return this.q + z; } }",
     "class F { int F(int V) { int V = V; for (int V : ys) {} return this.q + V; } }"),
    ("go", "func Add(a int) int { c := a + b; for i, v := range xs {}; return c }",
     "func F(V int) int { V := V + b; for V, V := range xs {}; return V }"),
    ("javascript", "function f(a, ...d) { const x = a; for (const k of x) {} return obj.p + x; }",
     "function F(V, ...V) { const V = V; for (const V of V) {} return obj.p + V; }"),
    ("typescript", "function f(a: number): number { const x = a; return x + y; }",
     "function F(V: number): number { const V = V; return V + y; }"),
    ("rust", "fn add(a: i32) -> i32 { let c = a + b; for i in 0..c {} c }",
     "fn F(V: i32) -> i32 { let V = V + b; for V in 0..V {} V }"),
    ("cpp", "int add(int a) { int c = a + b; return c + s.m; }", "int F(int V) { int V = V + b; return V + s.m; }"),
    ("c_sharp", "class A { int F(int x) { var y = x; return y + this.q; } }",
     "class F { int F(int V) { var V = V; return V + this.q; } }"),
])
def test_canonical_locals_in_every_grammar(language, text, expected):
    assert canonical_locals(text, language) == expected
