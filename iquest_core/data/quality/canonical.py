"""Identifier canonicalisation: code with every identifier renamed by order of first appearance.

    canonical_identifiers("def area(w, h):\n    return w * h\n", "python")
        -> "def v0(v1, v2):\n    return v1 * v2\n"

Identifiers are the grammar's named leaves whose type ends in "identifier" (identifier, field_identifier,
type_identifier, property_identifier, ...); keywords, literals, comments and layout are kept. Two texts that
differ only by a consistent renaming (Type-2 clones) become equal; so do different code with the same shape
(`def get_x(self): return self.x` and `def get_y(self): return self.y`), the price of the normalisation.
Applied before dedup (semdedup.hierarchical_dedup(preprocess=...)), it puts renamed clones within reach of
exact and MinHash dedup.
"""

from __future__ import annotations

from iquest_core.data import syntax


def canonical_identifiers(text: str, language: str) -> str:
    """`text` with its identifiers renamed v0, v1, ... in order of first appearance (module docstring)."""
    parsed = syntax.parse(text, language)
    names: dict[bytes, bytes] = {}
    pieces, at = [], 0
    cursor = parsed.tree.walk()
    while True:
        node = cursor.node
        if node.child_count == 0 and node.is_named and node.type.endswith("identifier"):
            name = parsed.data[node.start_byte:node.end_byte]
            pieces += [parsed.data[at:node.start_byte], names.setdefault(name, b"v%d" % len(names))]
            at = node.end_byte
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent() and not cursor.goto_next_sibling():
            pass
        if cursor.node == parsed.tree.root_node:
            break
    pieces.append(parsed.data[at:])
    return text[:parsed.bom] + b"".join(pieces).decode("utf-8")
