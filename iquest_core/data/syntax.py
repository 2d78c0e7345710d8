"""Tree-sitter syntax for the FIM levels and the syntax validity filter.

Grammars come from the per-language wheels (tree-sitter-python, -java, -typescript, -javascript,
-c-sharp, -go, -rust, -cpp) with the tree-sitter 0.26 API; nothing is downloaded. Candidate nodes of a
level are found by one compiled query per (language, level), run in C by a QueryCursor.

Offsets: tree-sitter reports UTF-8 byte offsets; `Parsed` converts them to str offsets, so slicing the
Python string gives the node's text for any content (BOM, CJK, emoji). A leading BOM is not part of the
source the grammar sees (tree-sitter would call it an error); offsets are shifted past it.

Every parse has a budget (CALLS_PER_BYTE): a text whose parse runs past it is given up on (`tree` None),
so one pathological file costs a bounded time in FIM, the syntax filter and AST validation alike.
"""

from __future__ import annotations

import bisect
import functools
import importlib
import itertools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter as ts

from iquest_core.data import conditionals, cpp_macros

LANGUAGES: tuple[str, ...] = ("python", "java", "typescript", "javascript", "c_sharp", "go", "rust", "cpp")
LEVELS: tuple[str, ...] = ("expression", "statement", "function")
PREPROCESSED: tuple[str, ...] = tuple(conditionals.BLANKED)  # languages parse(..., blank_macros=True) changes

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".java": "java", ".ts": "typescript", ".mts": "typescript",
    ".cts": "typescript", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".cs": "c_sharp", ".go": "go", ".rs": "rust", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
    ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp", ".h++": "cpp", ".h": "cpp",
}

_SPAN = operator.attrgetter("start_byte", "end_byte")

# Parse budget: progress calls (tree-sitter calls back every ~100 parse operations) per byte of text, plus
# MIN_CALLS. A clean parse uses about 1 per 100 bytes; error recovery of a grammar on text far from its
# language can run for minutes and take gigabytes (the Rust grammar on a 33 kB JavaScript file: 503 s).
CALLS_PER_BYTE = 0.1
MIN_CALLS = 100

_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"), "java": ("tree_sitter_java", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "javascript": ("tree_sitter_javascript", "language"), "c_sharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"), "rust": ("tree_sitter_rust", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

_JS_EXPRESSIONS = ("call_expression", "binary_expression", "member_expression", "subscript_expression",
                   "assignment_expression", "augmented_assignment_expression", "ternary_expression",
                   "new_expression", "arrow_function", "await_expression", "unary_expression", "update_expression",
                   "object", "array", "template_string", "function_expression")
_JS_STATEMENTS = ("expression_statement", "lexical_declaration", "variable_declaration", "return_statement",
                  "if_statement", "for_statement", "for_in_statement", "while_statement", "do_statement",
                  "try_statement", "throw_statement", "switch_statement", "import_statement")
_JS_FUNCTIONS = ("function_declaration", "generator_function_declaration", "method_definition", "arrow_function",
                 "function_expression")

# Node types per level: compound constructs a completion request would ask for (no bare identifiers or
# literals; no trivial `pass` / `break`).
NODE_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "python": {
        "expression": ("call", "binary_operator", "boolean_operator", "comparison_operator", "attribute",
                       "subscript", "list_comprehension", "dictionary_comprehension", "set_comprehension",
                       "generator_expression", "conditional_expression", "lambda", "unary_operator",
                       "not_operator", "list", "dictionary", "tuple", "await"),
        "statement": ("expression_statement", "return_statement", "if_statement", "for_statement",
                      "while_statement", "try_statement", "with_statement", "raise_statement", "assert_statement",
                      "import_statement", "import_from_statement", "delete_statement", "global_statement",
                      "nonlocal_statement", "match_statement"),
        "function": ("function_definition",),
    },
    "java": {
        "expression": ("method_invocation", "binary_expression", "object_creation_expression", "field_access",
                       "array_access", "ternary_expression", "lambda_expression", "cast_expression",
                       "instanceof_expression", "assignment_expression", "unary_expression", "update_expression",
                       "array_creation_expression", "method_reference", "switch_expression"),
        "statement": ("expression_statement", "local_variable_declaration", "return_statement", "if_statement",
                      "for_statement", "enhanced_for_statement", "while_statement", "do_statement", "try_statement",
                      "try_with_resources_statement", "throw_statement", "synchronized_statement",
                      "assert_statement", "yield_statement", "labeled_statement"),
        "function": ("method_declaration", "constructor_declaration"),
    },
    "javascript": {"expression": _JS_EXPRESSIONS, "statement": _JS_STATEMENTS, "function": _JS_FUNCTIONS},
    "typescript": {
        "expression": _JS_EXPRESSIONS + ("as_expression", "non_null_expression", "satisfies_expression"),
        "statement": _JS_STATEMENTS,
        "function": _JS_FUNCTIONS,
    },
    "c_sharp": {
        "expression": ("invocation_expression", "binary_expression", "member_access_expression",
                       "element_access_expression", "object_creation_expression", "assignment_expression",
                       "conditional_expression", "lambda_expression", "cast_expression",
                       "interpolated_string_expression", "prefix_unary_expression", "postfix_unary_expression",
                       "await_expression", "conditional_access_expression", "query_expression", "switch_expression",
                       "is_pattern_expression", "as_expression", "array_creation_expression"),
        "statement": ("expression_statement", "local_declaration_statement", "return_statement", "if_statement",
                      "for_statement", "foreach_statement", "while_statement", "do_statement", "try_statement",
                      "throw_statement", "switch_statement", "using_statement", "lock_statement", "yield_statement"),
        "function": ("method_declaration", "constructor_declaration", "local_function_statement",
                     "operator_declaration"),
    },
    "go": {
        "expression": ("call_expression", "binary_expression", "selector_expression", "index_expression",
                       "slice_expression", "composite_literal", "func_literal", "unary_expression",
                       "type_assertion_expression", "type_conversion_expression"),
        "statement": ("expression_statement", "assignment_statement", "short_var_declaration", "return_statement",
                      "if_statement", "for_statement", "expression_switch_statement", "type_switch_statement",
                      "select_statement", "defer_statement", "go_statement", "inc_statement", "dec_statement",
                      "send_statement", "var_declaration", "const_declaration"),
        "function": ("function_declaration", "method_declaration", "func_literal"),
    },
    "rust": {
        "expression": ("call_expression", "binary_expression", "field_expression", "index_expression",
                       "macro_invocation", "closure_expression", "if_expression", "match_expression",
                       "struct_expression", "reference_expression", "unary_expression", "try_expression",
                       "await_expression", "range_expression", "tuple_expression", "array_expression",
                       "type_cast_expression", "assignment_expression", "compound_assignment_expr"),
        "statement": ("expression_statement", "let_declaration"),
        "function": ("function_item",),
    },
    "cpp": {
        "expression": ("call_expression", "binary_expression", "field_expression", "subscript_expression",
                       "assignment_expression", "conditional_expression", "lambda_expression", "new_expression",
                       "delete_expression", "unary_expression", "update_expression", "cast_expression",
                       "pointer_expression", "sizeof_expression"),
        "statement": ("expression_statement", "declaration", "return_statement", "if_statement", "for_statement",
                      "for_range_loop", "while_statement", "do_statement", "switch_statement", "try_statement",
                      "throw_statement"),
        "function": ("function_definition",),
    },
}


_FUNCTION_DECLARATOR = ("(function_declarator declarator: [(identifier) (field_identifier) (qualified_identifier)"
                        " (destructor_name) (operator_name) (template_function)])")  # not a function pointer's
_PROTOTYPE_DECLARATORS = (_FUNCTION_DECLARATOR, f"(pointer_declarator declarator: {_FUNCTION_DECLARATOR})",
                          f"(reference_declarator {_FUNCTION_DECLARATOR})")

# Query patterns beyond plain node types (a pattern with its own @node capture stands alone). C/C++
# headers mostly declare: their function level also holds prototypes (a declaration or class member whose
# declarator is a function's) and function-like macro definitions; their statement level also holds the
# declarations a header is made of (typedefs, class members, using/alias declarations, static_assert);
# their expression level also holds a macro's replacement text (`#define MASK (1 << 4)`: `(1 << 4)`).
PATTERNS: dict[str, dict[str, tuple[str, ...]]] = {
    "cpp": {
        "expression": ("(preproc_def value: (preproc_arg) @node)", "(preproc_function_def value: (preproc_arg) @node)"),
        "statement": ("(type_definition)", "(field_declaration)", "(alias_declaration)", "(using_declaration)",
                      "(static_assert_declaration)"),
        "function": tuple(f"({kind} declarator: {d})" for kind in ("declaration", "field_declaration")
                          for d in _PROTOTYPE_DECLARATORS) + ("(preproc_function_def)",),
    },
}


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language: unknown language {language!r}; expected one of {LANGUAGES}")
    return language


def language_of(path: str) -> str | None:
    """The language of a file by its extension (case-insensitive), None when not one of LANGUAGES."""
    dot = path.rfind(".")
    return EXTENSIONS.get(path[dot:].lower()) if dot > path.rfind("/") else None


@lru_cache(maxsize=None)
def grammar(language: str) -> ts.Language:
    module, function = _GRAMMARS[check_language(language)]
    return ts.Language(getattr(importlib.import_module(module), function)())


@lru_cache(maxsize=None)
def _parser(language: str) -> ts.Parser:
    return ts.Parser(grammar(language))


@lru_cache(maxsize=None)
def level_query(language: str, level: str) -> ts.Query:
    """The compiled query capturing @node for every node type of `level` in `language`."""
    if level not in LEVELS:
        raise ValueError(f"level: unknown level {level!r}; expected one of {LEVELS}")
    patterns = PATTERNS.get(check_language(language), {}).get(level, ())
    alternatives = " ".join([f"({kind})" for kind in NODE_TYPES[language][level]]
                            + [p for p in patterns if "@node" not in p])
    return ts.Query(grammar(language), " ".join([f"[{alternatives}] @node"] + [p for p in patterns if "@node" in p]))


@lru_cache(maxsize=None)
def _problem_query(language: str) -> ts.Query:
    return ts.Query(grammar(language), "(ERROR) @problem (MISSING) @problem")


@dataclass(frozen=True)
class Parsed:
    """A parsed text: `tree` over `data` (the UTF-8 bytes after an optional BOM) and offset conversion;
    `tree` None when the parse ran past its budget (then not clean, error share 1.0, no nodes)."""
    text: str
    language: str
    data: bytes
    tree: ts.Tree | None
    bom: int  # 1 when the text starts with U+FEFF (kept out of the parse), else 0

    def char_offset(self, byte_offset: int) -> int:
        """str index in `text` of a byte offset into `data` (a UTF-8 character boundary)."""
        if len(self.data) == len(self.text) - self.bom:  # ASCII: bytes are characters
            return byte_offset + self.bom
        return len(self.data[:byte_offset].decode("utf-8")) + self.bom

    @property
    def clean(self) -> bool:
        """True when the tree has no ERROR or MISSING node (False without a tree)."""
        return self.tree is not None and not self.tree.root_node.has_error

    def nodes(self, level: str) -> list[ts.Node]:
        """Nodes of `level` (see NODE_TYPES) in document order (start, then end byte; the query's own order
        varies from run to run)."""
        if self.tree is None:
            return []
        nodes = ts.QueryCursor(level_query(self.language, level)).captures(self.tree.root_node).get("node", [])
        nodes.sort(key=_SPAN)
        return nodes

    def problem_spans(self, *, whole_errors: bool = False) -> list[tuple[int, int]]:
        """(start_byte, end_byte) by start of the bytes the parser could not place: every MISSING node
        (empty spans) and the tokens an ERROR node holds directly (its leaf children; the whole node when
        it has none). Complete subtrees that tree-sitter recovered inside an ERROR node are not problems.
        whole_errors=True gives every ERROR node's whole span instead. Without a tree: the whole text."""
        if self.tree is None:
            return [(0, len(self.data))]
        return _problem_spans(self.tree, self.language, whole_errors)

    def nodes_clear_of_errors(self, level: str, *, whole_errors: bool = False) -> list[ts.Node]:
        """The nodes of `level` that contain no ERROR or MISSING node and whose closed byte interval
        [start, end] meets no problem span (problem_spans(whole_errors=...)): a MISSING node at either end
        or an unplaceable token right next to the node disqualifies it."""
        nodes = [node for node in self.nodes(level) if not node.has_error]
        spans = self.problem_spans(whole_errors=whole_errors)
        if not spans:
            return nodes
        starts = [start for start, _ in spans]
        reach = list(itertools.accumulate((end for _, end in spans), max))  # furthest end among the first i
        clear = []
        for node in nodes:
            i = bisect.bisect_right(starts, node.end_byte)
            if i == 0 or reach[i - 1] < node.start_byte:
                clear.append(node)
        return clear

    def error_share(self) -> float:
        """(ERROR + MISSING nodes) / all nodes of the tree; 0.0 for a clean parse, 1.0 without a tree."""
        if self.tree is None:
            return 1.0
        root = self.tree.root_node
        if not root.has_error:
            return 0.0
        captures = ts.QueryCursor(_problem_query(self.language)).captures(root)
        return len(captures.get("problem", ())) / max(root.descendant_count, 1)


def _problem_spans(tree: ts.Tree, language: str, whole_errors: bool = False) -> list[tuple[int, int]]:
    root = tree.root_node
    if not root.has_error:
        return []
    spans = []
    for node in ts.QueryCursor(_problem_query(language)).captures(root).get("problem", []):
        if node.is_missing or whole_errors or node.child_count == 0:
            spans.append(_SPAN(node))
        else:
            spans.extend(_SPAN(child) for child in node.children if child.child_count == 0)
    return sorted(spans)


def parse(text: str, language: str, *, blank_macros: bool = False, taken: str = "first") -> Parsed:
    """Parse `text` (a str) as `language` within the parse budget (CALLS_PER_BYTE): a parse over it gives
    `tree` None (clean False, error_share 1.0, no nodes). blank_macros=True, for a C/C++ or C# parse with
    errors, parses the text of one configuration (conditionals.blank_conditionals(..., taken=taken):
    directives and the branches not taken blanked) when that has fewer bytes in errors, then for C/C++
    with its annotation macros blanked (cpp_macros.blank_macros); other languages are not changed. The
    tree's offsets are those of `text`, `Parsed.data` holds the original bytes, `Node.text` the blanked ones."""
    bom = 1 if text.startswith("\ufeff") else 0
    try:
        data = text[bom:].encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"text: expected valid Unicode, got {error}") from None
    parse_bytes = functools.partial(_parse_within_budget, _parser(check_language(language)))
    tree = parse_bytes(data)
    if blank_macros and language in PREPROCESSED and tree is not None and tree.root_node.has_error:
        tree = _preprocessed(data, language, tree, parse_bytes, taken)
    return Parsed(text, language, data, tree, bom)


def _preprocessed(data: bytes, language: str, tree: ts.Tree, parse_bytes: Callable[[bytes], ts.Tree | None],
                  taken: str) -> ts.Tree | None:
    """The tree of `data` parsed with its conditionals, then (C/C++) its annotation macros, blanked: each
    kept only when the parse has fewer bytes in errors."""
    def problems(candidate: bytes) -> list[tuple[int, int]]:
        parsed = parse_bytes(candidate)
        return [(0, len(candidate))] if parsed is None else _problem_spans(parsed, language, True)

    configuration = conditionals.blank_conditionals(data, language, taken=taken)
    if configuration is not None and configuration != data:
        candidate = parse_bytes(configuration)
        if candidate is not None and (cpp_macros.error_cost(_problem_spans(candidate, language, True))
                                      < cpp_macros.error_cost(_problem_spans(tree, language, True))):
            data, tree = configuration, candidate
    if language == "cpp" and tree is not None and tree.root_node.has_error:
        blanked = cpp_macros.blank_macros(data, problems)
        tree = tree if blanked == data else parse_bytes(blanked)
    return tree


def _parse_within_budget(parser: ts.Parser, data: bytes) -> ts.Tree | None:
    """The tree of `data`, or None when the parse needs more than MIN_CALLS + CALLS_PER_BYTE * len(data)
    progress calls (the parser is reset then)."""
    calls, budget = [0], MIN_CALLS + CALLS_PER_BYTE * len(data)

    def over_budget(*_state: object) -> bool:
        calls[0] += 1
        return calls[0] > budget

    try:
        return parser.parse(lambda at, _point: data[at:at + 65536], progress_callback=over_budget)
    except ValueError:  # the parse was cancelled
        parser.reset()
        return None
