"""FIM throughput against the floor and the usual baseline, on one core.

- Syntax modes (expression, statement, function): fim.split = tree-sitter parse + one C-side query +
  offset conversion. The floor is tree-sitter's bare parse of the same files; the baseline is what
  public FIM scripts do: the same parse, then a Python walk over every node (TreeCursor) to collect the
  level's nodes. Claim: syntax-mode FIM within 2x of the bare parse.
- Heuristic modes (char, line): MB/s of UTF-8 input (each benchmark's `extra_info`).

Corpora: every fourth top-level module of the Python standard library (~1 MB) and the shipped
multi-language corpus tests/data/files (8 languages; ~20 ms a pass, so more rounds). The figures are
measured, not asserted: the end-of-run summary (bench/conftest.py) prints each group's medians side by
side, relative to fim.split (syntax groups) or line mode (heuristic groups), all from one run.
"""

import random
import sysconfig
from pathlib import Path

import pytest

from iquest_core.data import fim, syntax

ROOT = Path(__file__).resolve().parents[1]
STDLIB = Path(sysconfig.get_paths()["stdlib"])  # the running interpreter's standard library


def _files(paths):
    out = []
    for path in paths:
        language = syntax.language_of(path.name)
        if language is not None:
            out.append((language, path.read_text(encoding="utf-8")))
    return out


CORPORA = {
    "stdlib": _files(sorted(STDLIB.glob("*.py"))[::4]),
    "multilang": _files(sorted((ROOT / "tests" / "data" / "files").rglob("*"))),
}
ROUNDS = {"stdlib": 5, "multilang": 25}


def megabytes(files):
    return sum(len(text.encode()) for _, text in files) / 1e6


def bare_parse(files, level, rng):
    for language, text in files:
        syntax._parser(language).parse(text.encode())


def fim_split(files, level, rng):
    for language, text in files:
        fim.split(text, level, rng, language=language)


def python_walk(files, level, rng):
    """Parse, walk every node in Python collecting the level's types, pick one, convert offsets."""
    for language, text in files:
        parsed = syntax.parse(text, language)
        if not parsed.clean:
            continue
        kinds = set(syntax.NODE_TYPES[language][level])
        found, cursor, climbing = [], parsed.tree.walk(), False
        while True:
            if not climbing:
                if cursor.node.type in kinds:
                    found.append(cursor.node)
                if cursor.goto_first_child():
                    continue
            if cursor.goto_next_sibling():
                climbing = False
                continue
            if not cursor.goto_parent():
                break
            climbing = True
        if found:
            node = rng.choice(found)
            text[parsed.char_offset(node.start_byte):parsed.char_offset(node.end_byte)]



def record(record_median, benchmark, group, impl, subject, files):
    if benchmark.stats is None:  # --benchmark-disable
        return
    benchmark.extra_info["MB/s"] = megabytes(files) / benchmark.stats.stats.median
    record_median(group, impl, benchmark, subject=subject)


SYNTAX_IMPLS = {"fim.split": fim_split, "bare parse": bare_parse, "python walk": python_walk}


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("level", syntax.LEVELS)
@pytest.mark.parametrize("impl", list(SYNTAX_IMPLS))
def test_syntax_fim(benchmark, record_median, corpus, level, impl):
    files, fn = CORPORA[corpus], SYNTAX_IMPLS[impl]
    group = f"fim {level} {corpus} ({megabytes(files):.2f} MB)"
    benchmark.group = group
    benchmark.pedantic(fn, args=(files, level, random.Random(0)), rounds=ROUNDS[corpus], warmup_rounds=1)
    record(record_median, benchmark, group, impl, impl == "fim.split", files)


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("mode", fim.HEURISTIC_MODES)
def test_heuristic_fim(benchmark, record_median, corpus, mode):
    files = CORPORA[corpus]
    group = f"fim heuristic {corpus} ({megabytes(files):.2f} MB)"
    benchmark.group = group
    benchmark.pedantic(fim_split, args=(files, mode, random.Random(0)), rounds=20, warmup_rounds=2)
    record(record_median, benchmark, group, mode, mode == "line", files)
