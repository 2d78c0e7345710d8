"""Per-document outcomes of the heuristic rules: the list of reason codes a document fails, one per rule
set ("<rule set>:<reason>", e.g. "gopher_repetition:top_2_gram", "code:minified"); empty means keep.

    text_reasons(text)                          Gopher quality + repetition, C4, FineWeb lines
    text_reasons(text, ["fineweb"])             a subset, by name (TEXT_RULES)
    code_reasons(text)                          the code rules (code_rules.code_quality)
    document_reasons(path, text)                code rules for a file of a known language, text rules else
"""

from __future__ import annotations

from collections.abc import Sequence

from iquest_core.data import syntax
from iquest_core.data.quality.code_rules import CodeQuality, code_quality
from iquest_core.data.quality.text_rules import TEXT_RULES

TEXT_RULE_SETS: tuple[str, ...] = tuple(TEXT_RULES)


def check_rule_sets(rule_sets: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in rule_sets if name not in TEXT_RULES]
    if unknown or isinstance(rule_sets, str):
        raise ValueError(f"rule_sets: unknown rule set {unknown[0] if unknown else rule_sets!r}; "
                         f"expected names from {TEXT_RULE_SETS}")
    return tuple(rule_sets)


def text_reasons(text: str, rule_sets: Sequence[str] = TEXT_RULE_SETS) -> list[str]:
    """"<rule set>:<reason>" for every rule set in `rule_sets` that `text` fails (published defaults)."""
    reasons = []
    for name in check_rule_sets(rule_sets):
        rule, config = TEXT_RULES[name]
        reason = rule(text, config())
        if reason is not None:
            reasons.append(f"{name}:{reason}")
    return reasons


def code_reasons(text: str, config: CodeQuality = CodeQuality()) -> list[str]:
    """["code:<reason>"] when the code rules drop `text`, else []."""
    reason = code_quality(text, config)
    return [] if reason is None else [f"code:{reason}"]


def document_reasons(path: str, text: str, rule_sets: Sequence[str] = TEXT_RULE_SETS) -> list[str]:
    """Code rules for a file in one of syntax.LANGUAGES (by extension), the text rules for anything else."""
    if syntax.language_of(path) is not None:
        return code_reasons(text)
    return text_reasons(text, rule_sets)
