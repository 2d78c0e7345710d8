"""Identifier canonicalisation: code with its identifiers replaced by placeholders, for dedup.

    canonical_identifiers("def area(w, h):\n    return w * h\n", "python")
        -> "def v0(v1, v2):\n    return v1 * v2\n"
    canonical_locals("def area(w, h):\n    return len(w) * self.h\n", "python")
        -> "def F(V, V):\n    return len(V) * self.h\n"

`canonical_identifiers` renames every identifier (the grammar's named leaves whose type ends in
"identifier": identifier, field_identifier, type_identifier, ...) v0, v1, ... in order of first
appearance; keywords, literals, comments and layout are kept. Two texts that differ only by a consistent
renaming (Type-2 clones) become equal; so does different code of the same shape
(`def get_x(self): return self.x` and `def get_y(self): return self.y`).

`canonical_locals` renames only the names the code itself binds, by role: the name of a function or class
it defines -> F, every other bound name (parameters, assigned locals, loop / with / except / comprehension
targets, import aliases) -> V, with no number, so reordering statements does not renumber them. Names the
code uses but does not bind (builtins, globals, called functions, imported modules), attribute and field
names, keyword-argument names and type names are kept: a renaming of locals does not change what the code
does, a renaming of those would. Bound names are found by where they stand in the tree (BINDING: parent
node type -> fields of the parent in which an identifier child binds a name; "" = a child without a field)
for the 8 grammars of `syntax.LANGUAGES`.
"""

from __future__ import annotations

from collections.abc import Iterator

import tree_sitter as ts

from iquest_core.data import syntax

BINDING: dict[str, frozenset[str]] = {parent: frozenset(fields) for parent, fields in {
    # definitions: the defined name is F
    "function_definition": {"name"}, "class_definition": {"name"}, "function_declaration": {"name"},
    "method_declaration": {"name"}, "class_declaration": {"name"}, "function_item": {"name"},
    "function_declarator": {"declarator"}, "generator_function_declaration": {"name"},
    # parameters
    "parameters": {""}, "lambda_parameters": {""}, "default_parameter": {"name"}, "typed_parameter": {""},
    "typed_default_parameter": {"name"}, "list_splat_pattern": {""}, "dictionary_splat_pattern": {""},
    "formal_parameter": {"name"}, "formal_parameters": {""}, "parameter_declaration": {"name", "declarator"},
    "parameter": {"name", "pattern"}, "required_parameter": {"pattern"}, "optional_parameter": {"pattern"},
    "rest_pattern": {""}, "closure_parameters": {""}, "inferred_parameters": {""},
    "catch_formal_parameter": {"name"}, "catch_declaration": {"name"}, "variadic_parameter_declaration": {"name"},
    # assignments, declarations, loop and pattern targets
    "assignment": {"left"}, "augmented_assignment": {"left"}, "named_expression": {"name"},
    "for_statement": {"left"}, "for_in_clause": {"left"}, "pattern_list": {""}, "tuple_pattern": {""},
    "list_pattern": {""}, "as_pattern_target": {""}, "aliased_import": {"alias"},
    "variable_declarator": {"name"}, "enhanced_for_statement": {"name"}, "for_in_statement": {"left"},
    "array_pattern": {""}, "assignment_expression": {"left"}, "var_spec": {"name"}, "const_spec": {"name"},
    "let_declaration": {"pattern"}, "for_expression": {"pattern"}, "init_declarator": {"declarator"},
    "declaration": {"declarator"}, "structured_binding_declarator": {""}, "foreach_statement": {"left"},
}.items()}
DEFINITIONS = frozenset({"function_definition", "class_definition", "function_declaration", "method_declaration",
                         "class_declaration", "function_item", "function_declarator",
                         "generator_function_declaration"})
# Go binds with lists: `a, b := ...` and `for i, v := range ...` (the list in the statement's "left").
LIST_BINDING = frozenset({"short_var_declaration", "range_clause"})


def _leaves(tree: ts.Tree) -> Iterator[tuple[ts.Node, str]]:
    """Every named leaf whose type ends in "identifier", with its field name in its parent ("" if none)."""
    cursor = tree.walk()
    while True:
        node = cursor.node
        if node.child_count == 0 and node.is_named and node.type.endswith("identifier"):
            yield node, cursor.field_name or ""
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent() and not cursor.goto_next_sibling():
            pass
        if cursor.node == tree.root_node:
            return


def _replaced(parsed: syntax.Parsed, replacement: dict[int, bytes]) -> str:
    """The parsed text with the leaf starting at each byte offset of `replacement` replaced."""
    pieces, at = [], 0
    for node, _ in _leaves(parsed.tree):
        new = replacement.get(node.start_byte)
        if new is not None:
            pieces += [parsed.data[at:node.start_byte], new]
            at = node.end_byte
    pieces.append(parsed.data[at:])
    return parsed.text[:parsed.bom] + b"".join(pieces).decode("utf-8")


def canonical_identifiers(text: str, language: str) -> str:
    """`text` with every identifier renamed v0, v1, ... in order of first appearance (module docstring)."""
    parsed = syntax.parse(text, language)
    names: dict[bytes, bytes] = {}
    replacement = {node.start_byte: names.setdefault(node.text, b"v%d" % len(names))
                   for node, _ in _leaves(parsed.tree)}
    return _replaced(parsed, replacement)


def _binding_role(node: ts.Node, field: str) -> bytes | None:
    """b"F" or b"V" when the identifier `node` (in `field` of its parent) binds a name, else None."""
    parent = node.parent
    if parent.type == "expression_list" and parent.parent is not None and parent.parent.type in LIST_BINDING \
            and parent.parent.child_by_field_name("left") == parent:
        return b"V"
    if field not in BINDING.get(parent.type, ()):
        return None
    return b"F" if parent.type in DEFINITIONS else b"V"


def canonical_locals(text: str, language: str) -> str:
    """`text` with the names it binds replaced by their role, F (defined function or class) or V (any other
    bound name); free names, attributes and fields kept (module docstring). A name bound both ways is F."""
    parsed = syntax.parse(text, language)
    leaves = list(_leaves(parsed.tree))
    roles: dict[bytes, bytes] = {}
    for node, field in leaves:
        role = _binding_role(node, field)
        if role is not None and roles.get(node.text) != b"F":
            roles[node.text] = role
    replacement = {node.start_byte: roles[node.text] for node, field in leaves
                   if node.type == "identifier" and node.text in roles and not _is_member(node, field)}
    return _replaced(parsed, replacement)


def _is_member(node: ts.Node, field: str) -> bool:
    """An attribute, field or keyword-argument name (`obj.name`, `f(name=...)`), which a local renaming
    leaves alone."""
    return (node.parent.type, field) in {("attribute", "attribute"), ("keyword_argument", "name"),
                                         ("member_access_expression", "name"), ("field_access", "field")}
