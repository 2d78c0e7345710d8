"""Syntax-level FIM on real C and C++ headers (macros make tree-sitter report errors in most of them).

    python bench/quality_fim_headers.py [FILES_PER_SOURCE]

Headers: every k-th `.h` under /usr/include (C) and under torch's include folder (C++: c10, ATen, torch),
sorted by path. For each level, the share of files that give a split (fim.split: C/C++ parsed with
annotation macros blanked; the levels' header meaning is in fim's docstring); every split is checked: the
round trip is exact, the middle is exactly one node of the level in that parse and touches no ERROR/MISSING
node. Beside it, the share a plain parse (no blanking) would give. Printed for all headers and for those
whose plain parse has errors; s/file is the wall time per file of the whole measurement (loaded machine).
"""

from __future__ import annotations

import os
import random
import sys
import time
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
    rng = random.Random(0)
    print(f"load {os.getloadavg()[0]:.1f}; share of files giving a split per level: fim.split (macros blanked) "
          "| plain parse, no blanking (nodes clear of errors); 'with errors' rows: files whose plain parse has errors")
    print(f"{'headers':<16}{'files':>7}" + "".join(f"{lv:>12}" for lv in syntax.LEVELS) + "   |"
          + "".join(f"{lv:>12}" for lv in syntax.LEVELS) + f"{'s/file':>9}")
    for name, root in SOURCES.items():
        rows: dict[str, list[list[bool]]] = {"all": [], "errors": []}
        start = time.perf_counter()
        for path in headers(root, count):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            plain = syntax.parse(text, "cpp")
            parsed = syntax.parse(text, "cpp", blank_macros=True)
            got = []
            for level in syntax.LEVELS:
                split = fim.split(text, level, rng, language="cpp")
                if split is not None:
                    check_split(text, parsed, level, split)
                got.append(split is not None)
            got += [bool(plain.nodes_clear_of_errors(level)) for level in syntax.LEVELS]
            rows["all"].append(got)
            if not plain.clean:
                rows["errors"].append(got)
        seconds = (time.perf_counter() - start) / max(len(rows["all"]), 1)
        for kind, table in rows.items():
            shares = [sum(r[i] for r in table) / max(len(table), 1) for i in range(2 * len(syntax.LEVELS))]
            cells = [f"{s:>12.3f}" for s in shares]
            print(f"{name if kind == 'all' else '  with errors':<16}{len(table):>7}" + "".join(cells[:3]) + "   |"
                  + "".join(cells[3:]) + (f"{seconds:>9.3f}" if kind == "all" else ""))


if __name__ == "__main__":
    main()
