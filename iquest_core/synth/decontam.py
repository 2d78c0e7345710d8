"""Decontamination of synthetic records against every evaluation the package runs, including copies
whose identifiers were renamed.

    guard = EvaluationGuard.for_package_evaluations()
    guard.contaminated(text)    # [] or e.g. ["verbatim:HumanEval/0", "renamed:HumanEval/0"]

Two indexes over the evaluation items:

- verbatim: `data.decontam.BenchmarkIndex` (13-token runs of identifiers and numbers, whitespace-free);
- renamed: windows of `window` code tokens (identifiers, numbers, string literals (a docstring is one
  STR token), operators and brackets) in which every identifier that is not a Python keyword is replaced by its
  order of first appearance inside the window (alpha-renaming). Renaming variables, functions and
  arguments consistently, re-indenting or rewriting docstrings leaves a window's canonical form as it
  was; it is hashed and looked up. Windows are long (default 24 tokens, operators included) and need
  MIN_DISTINCT different tokens, so that shared idioms and runs of list items alone do not match.

Evaluations: `evaluation_items()`. The renamed index covers the code evaluations only (HumanEval and
the infilling set cut from it); BFCL's questions are natural language and go to the verbatim index.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping

from iquest_core.data.decontam import BenchmarkIndex

_CODE_TOKEN = re.compile(r"""(?P<str>\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')"""
                         r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d+(?:\.\d+)?)|(?P<op>[^\sA-Za-z0-9_])")
_KEEP = frozenset(keyword.kwlist)
MIN_DISTINCT = 8


def canonical_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, token) of text: kind "name" for renameable identifiers, "lit" for everything else."""
    out = []
    for match in _CODE_TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "str":
            out.append(("lit", "STR" if match.group()[:3] in ('"""', "'''") else match.group()))
        elif kind == "name" and match.group() not in _KEEP:
            out.append(("name", match.group()))
        else:
            out.append(("lit", match.group()))
    return out


def _window_key(tokens: list[tuple[str, str]]) -> int | None:
    """The hash of the window's alpha-renamed form; None for a window of fewer than MIN_DISTINCT distinct
    tokens (a run of list items, a repeated idiom: no evidence of a copy)."""
    names: dict[str, int] = {}
    canonical = tuple(f"v{names.setdefault(tok, len(names))}" if kind == "name" else tok for kind, tok in tokens)
    return hash(canonical) if len(set(canonical)) >= MIN_DISTINCT else None


class RenamedIndex:
    """Alpha-renamed windows of evaluation items (module docstring), by item id."""

    def __init__(self, items: Mapping[str, str], window: int = 24) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 4:
            raise ValueError(f"window: expected an int >= 4, got {window!r}")
        self.window = window
        self._keys: dict[int, dict[int, set[str]]] = {}  # window length -> canonical hash -> item ids
        for item_id, text in items.items():
            tokens = canonical_tokens(text)
            length = min(window, len(tokens))
            for key in self._window_keys(tokens, length):
                self._keys.setdefault(length, {}).setdefault(key, set()).add(item_id)

    @staticmethod
    def _window_keys(tokens: list[tuple[str, str]], length: int):
        for i in range(len(tokens) - length + 1):
            key = _window_key(tokens[i:i + length])
            if key is not None:
                yield key

    def matches(self, text: str) -> list[str]:
        """Sorted ids of the items sharing a renamed window with text (or occurring whole, when shorter)."""
        tokens = canonical_tokens(text)
        found: set[str] = set()
        for length, keys in self._keys.items():
            for key in self._window_keys(tokens, length):
                found |= keys.get(key, set())
        return sorted(found)


def evaluation_items() -> dict[str, dict[str, str]]:
    """Evaluation name -> {item id: text} for every evaluation the package runs (`iquest eval ...`):

    - humaneval: prompt + canonical solution per task;
    - bfcl: the user turns of every question of the four AST categories (the `bfcl-eval` wheel's data);
      function specs are left out: JSON schemas share long generic runs ("type", "string", "description").
    The humaneval-infill items are cut from HumanEval's canonical solutions (prefix + middle + suffix is
    prompt + canonical solution), so the humaneval items cover them (tests/synth/test_decontam.py)."""
    from iquest_core.eval import bfcl, humaneval
    from iquest_core.eval.bfcl_checker import CATEGORIES

    return {"humaneval": {task: p["prompt"] + p["canonical_solution"] for task, p in humaneval.load_problems().items()},
            "bfcl": {f"BFCL/{item['id']}": "\n".join(m["content"] for m in item["messages"] if m["role"] == "user")
                     for item in bfcl.load_items(list(CATEGORIES))}}


class EvaluationGuard:
    """Verbatim and renamed-identifier matches of a text against evaluation items."""

    def __init__(self, items: Mapping[str, str], *, code_items: Mapping[str, str] | None = None, ngram: int = 13,
                 window: int = 24) -> None:
        """items: every evaluation item (verbatim index); code_items: those whose renamed copies count too
        (default: all items)."""
        self.verbatim = BenchmarkIndex(dict(items), ngram=ngram)
        self.renamed = RenamedIndex(dict(items if code_items is None else code_items), window=window)

    @classmethod
    def for_package_evaluations(cls, **kwargs) -> EvaluationGuard:
        sets = evaluation_items()
        return cls({item: text for evaluation in sets.values() for item, text in evaluation.items()},
                   code_items=sets["humaneval"], **kwargs)

    def contaminated(self, text: str) -> list[str]:
        """Reasons ("verbatim:ID", "renamed:ID") why text must not be kept; [] when clean."""
        return [f"verbatim:{i}" for i in self.verbatim.matches(text)] + \
            [f"renamed:{i}" for i in self.renamed.matches(text)]
