"""Syntax-level FIM on real C and C++ headers (macros make tree-sitter report errors in most of them).

    python bench/quality_fim_headers.py [FILES_PER_SOURCE]

Headers: every k-th `.h` under /usr/include (C) and under torch's include folder (C++: c10, ATen, torch),
sorted by path. For each level, the share of files that give a split; every split is checked: the round
trip is exact, the middle is exactly one node of the level and touches no ERROR/MISSING node. Printed for
all headers and for those whose parse has errors (the files the earlier splitter refused).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import torch

from iquest_core.data import fim, syntax

SOURCES = {"/usr/include": Path("/usr/include"), "torch/include": Path(torch.__file__).parent / "include"}


def headers(root: Path, count: int) -> list[Path]:
    paths = sorted(p for p in root.rglob("*.h") if p.is_file())
    step = max(len(paths) // count, 1)
    return paths[::step][:count]


def check_split(text: str, parsed: syntax.Parsed, level: str, split: fim.FimSplit) -> None:
    assert split.prefix + split.middle + split.suffix == text
    start = len(split.prefix.encode())
    end = start + len(split.middle.encode())
    assert any(n.start_byte == start and n.end_byte == end for n in parsed.nodes(level)), "middle is not one node"
    assert all(e < start or s > end for s, e in parsed.problem_spans()), "middle touches an error token"
    node = next(n for n in parsed.nodes(level) if n.start_byte == start and n.end_byte == end)
    assert not node.has_error, "middle contains an error node"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for strict in (False, True):
        print("nodes inside an ERROR node " + ("excluded (whole ERROR spans)" if strict else
                                               "allowed when complete and clear of its tokens (default)"))
        table(count, strict)


def table(count: int, strict: bool) -> None:
    rng = random.Random(0)
    print(f"{'headers':<16}{'files':>7}{'with errors':>13}" + "".join(f"{lv:>12}" for lv in syntax.LEVELS)
          + "   (share of files giving a split; errors-only row below)")
    for name, root in SOURCES.items():
        rows = {"all": [], "errors": []}
        for path in headers(root, count):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            parsed = syntax.parse(text, "cpp", blank_macros=True)
            got = []
            for level in syntax.LEVELS:
                if strict:
                    nodes = parsed.nodes_clear_of_errors(level, whole_errors=True)
                    got.append(bool(nodes))
                    continue
                split = fim.split(text, level, rng, language="cpp")
                if split is not None:
                    check_split(text, parsed, level, split)
                got.append(split is not None)
            rows["all"].append(got)
            if not parsed.clean:
                rows["errors"].append(got)
        for kind, table in rows.items():
            shares = [sum(r[i] for r in table) / max(len(table), 1) for i in range(len(syntax.LEVELS))]
            label = name if kind == "all" else "  with errors"
            print(f"{label:<16}{len(table):>7}{len(rows['errors']) if kind == 'all' else '':>13}"
                  + "".join(f"{s:>12.3f}" for s in shares))


if __name__ == "__main__":
    main()
