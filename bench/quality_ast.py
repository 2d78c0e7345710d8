"""AST validation: telling valid code from damaged code on real files of the 8 languages.

    python bench/quality_ast.py [FILES_PER_LANGUAGE] [MORE_ROOTS...]   (e.g. checkouts of public repositories)

Valid: real files (1-40 kB, drawn at random, seeded, from all such files) found on disk (site-packages,
node's npm, /usr/include, /usr/share/doc, the shipped tests/data/files, MORE_ROOTS) whose parse in their
own language is clean (the drawn files that do not parse clean are counted and printed); each also gives four damaged
copies: truncated (cut at a random character between 30% and 70%), mixed with prose (an English
paragraph inserted at a random line), HTML-escaped (< > & " as entities; only files containing one of
them), line-numbered ("  12 | " before each line). validate() without a language hint must call the
file valid and every damaged copy invalid (whole_file=True: a file cut off without its final newline is
"truncated"). Positive class = valid code. The prose goes at a line that starts in code, not inside a
string or comment (where it would still be valid code).
"""

from __future__ import annotations

import html
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path

from iquest_core.data import syntax
from iquest_core.data.quality.ast_check import validate

ROOTS = [Path(__file__).parent.parent / "tests" / "data" / "files", Path("/usr/lib/node_modules"),
         Path("/usr/share/doc"), Path("/usr/include"), Path(sys.prefix) / "lib"]
PROSE = ("This function was added in the last release to handle the edge cases reported by users, and it\n"
         "should be read together with the notes in the documentation before you change anything here.\n")


def real_files(per_language: int, roots: list[Path]) -> tuple[dict[str, list[tuple[Path, str]]], Counter]:
    """Per language, up to `per_language` distinct real files drawn at random (seeded) from all 1-40 kB
    files under `roots`, kept when their parse in their own language is clean; and per language the
    number of drawn files whose parse is not clean (excluded from the positives: reported beside)."""
    candidates: dict[str, list[Path]] = defaultdict(list)
    for root in roots:
        for path in sorted(root.rglob("*")):
            language = syntax.language_of(path.name)
            if language is None or language == "cpp" and path.suffix == ".h":
                continue
            try:
                if path.is_file() and 1000 <= path.stat().st_size <= 40000:
                    candidates[language].append(path)
            except OSError:
                continue
    rng = random.Random(0)
    found: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    unclean: Counter = Counter()
    for language, paths in sorted(candidates.items()):
        seen = set()
        for path in rng.sample(paths, len(paths)):
            if len(found[language]) >= per_language:
                break
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text in seen:
                continue
            seen.add(text)
            if syntax.parse(text, language).clean:
                found[language].append((path, text))
            else:
                unclean[language] += 1
    return found, unclean


def _code_line_starts(text: str, language: str) -> list[int]:
    """Indices of the lines whose start is code, not inside a string or comment (prose put there would
    still be valid code)."""
    parsed = syntax.parse(text, language)
    starts, offset = [], 0
    for i, line in enumerate(text.split("\n")):
        node = parsed.tree.root_node.descendant_for_byte_range(offset, offset)
        while node is not None and not any(k in node.type for k in ("string", "comment")):
            node = node.parent
        if i and node is None:
            starts.append(i)
        offset += len(line.encode()) + 1
    return starts


def damaged(text: str, language: str, rng: random.Random) -> dict[str, str]:
    lines = text.split("\n")
    at = rng.choice(_code_line_starts(text, language) or [len(lines) - 1])
    out = {"truncated": text[:rng.randint(int(0.3 * len(text)), int(0.7 * len(text)))],
           "prose": "\n".join(lines[:at] + [PROSE] + lines[at:]),
           "line_numbered": "\n".join(f"{i + 1:>4} | {line}" for i, line in enumerate(lines))}
    if any(ch in text for ch in '<>&"'):
        out["html_escaped"] = html.escape(text, quote=True).replace("&#x27;", "'")
    return out


def main() -> None:
    per_language = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    files, unclean = real_files(per_language, ROOTS + [Path(p) for p in sys.argv[2:]])
    print("drawn files whose own-language parse is not clean (not positives): "
          + ", ".join(f"{lang} {unclean[lang]}/{unclean[lang] + len(files[lang])}" for lang in sorted(files)))
    for whole_file in (True, False):
        print(f"whole_file={whole_file} (" + ("a missing final newline is damage" if whole_file else
                                              "the grammars and the escaping/numbering checks only") + ")")
        table(files, whole_file)


def table(files: dict[str, list[tuple[Path, str]]], whole_file: bool) -> None:
    rng = random.Random(0)
    tally: dict[str, Counter] = defaultdict(Counter)  # language -> tp, fn, fp, tn
    missed: Counter = Counter()
    identified = Counter()
    for language, pairs in sorted(files.items()):
        for path, text in pairs:
            check = validate(text, whole_file=whole_file)
            tally[language]["tp" if check.valid else "fn"] += 1
            identified[(language, check.language)] += 1
            for kind, bad in damaged(text, language, rng).items():
                valid = validate(bad, whole_file=whole_file).valid
                tally[language]["fp" if valid else "tn"] += 1
                if valid:
                    missed[(language, kind)] += 1
    print(f"{'language':<12}{'files':>6}{'damaged':>9}{'precision':>11}{'recall':>8}  identified as")
    total = Counter()
    for language, t in sorted(tally.items()):
        total.update(t)
        ids = {k[1]: v for k, v in identified.items() if k[0] == language}
        print(f"{language:<12}{t['tp'] + t['fn']:>6}{t['fp'] + t['tn']:>9}{_p(t):>11.3f}{_r(t):>8.3f}  {ids}")
    print(f"{'all':<12}{total['tp'] + total['fn']:>6}{total['fp'] + total['tn']:>9}{_p(total):>11.3f}{_r(total):>8.3f}")
    print("damaged copies called valid:", dict(missed))


def _p(t: Counter) -> float:
    return t["tp"] / max(t["tp"] + t["fp"], 1)


def _r(t: Counter) -> float:
    return t["tp"] / max(t["tp"] + t["fn"], 1)


if __name__ == "__main__":
    main()
