"""AST validation: telling valid code from damaged code on real files of the 8 languages, per language and
per damage kind, on a tuning half and a held-out half of the repositories.

    python bench/quality_ast.py [FILES_PER_LANGUAGE] [REPOSITORY_DIRS...] [--misses misses.jsonl]

Repositories: every subdirectory of each REPOSITORY_DIR (checkouts of public repositories), and the
packages on this machine (each package under site-packages or node_modules, each top-level entry of
/usr/include and /usr/share/doc). Split: a repository's main language is the one with most of its
candidate files (1-40 kB); within each main language, repositories sorted by name alternate between
"tune" and "held-out". Per split and language, up to FILES_PER_LANGUAGE files are drawn (seeded, round
robin over the repositories). Every drawn file is a positive (valid code); two figures are printed:
"clean-parse positives" counts only the files whose plain parse in their own language is clean (damaged
copies are made of these only), "all drawn" counts the others too (libstdc++ fragments, macro-heavy
headers, newer C# syntax: real code the grammars cannot parse clean); "no templates" is "all drawn" less
the drawn files under a `templates` directory (code generators' inputs, `is_template`: a rule by path,
fixed before the run; their damaged copies stay). validate() gets no language hint.

Each file gives up to four damaged copies, each kept only when a parser can see the damage:
truncated      cut at a random character between 30% and 70% of the file, kept when the cut drops the
               closing delimiter (`}` `)` `]` a quote, `*/`, `#endif`) of a construct whose opener it keeps
               (mid-block or mid-token), else redrawn: a cut between two complete top-level statements,
               or inside a Python block that stays a parsable prefix, is invisible to any parser (the
               first redrawn cut per file is validated too and reported as "cut_elsewhere", not counted
               in precision or recall).
prose          1 to 3 English sentences, each on its own line, at 1 or 2 line starts that are code: not
               inside a string, comment, Rust token tree (macro arguments accept any tokens), JSX element
               (its text is free text) or preprocessor definition.
html_escaped   < > & " as entities, kept when one of them is outside strings, regular expressions,
               comments, token trees and JSX text (where the grammar would still read it the same way).
line_numbered  every line prefixed with its number, in one of several gutter styles.
The copies that could not be made are counted per kind ("skipped").
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import random
import sys
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from iquest_core.data import syntax
from iquest_core.data.quality.ast_check import validate

SYSTEM_ROOTS = [Path("/usr/lib/node_modules"), Path("/usr/share/doc"), Path("/usr/include"), Path(sys.prefix) / "lib"]
SENTENCES = (
    "This function was added in the last release to handle the edge cases reported by users.",
    "Read the notes in the documentation before you change anything here, since the order matters.",
    "Copy the snippet below into your project and adjust the names to match your own code.",
    "In my experience this approach works well, but it is slower on large inputs.",
    "Note: the following part is optional and can be skipped on a first reading.",
    "Thanks for the answer! It worked for me after I restarted the server.",
    "As you can see, the loop stops as soon as the condition is met.",
    "Here is the full example that I used to reproduce the problem on my machine:",
)
GUTTERS = ("{n:>4} | ", "{n}: ", "{n}\t", "{n:>5}  ", "{n}. ")
CLOSERS = frozenset({b"}", b")", b"]", b'"', b"'", b"`", b'"""', b"'''", b"#endif"})
OPENERS = frozenset({b"{", b"(", b"[", b'"', b"'", b"`", b'"""', b"'''", b"#if", b"#ifdef", b"#ifndef"})
PROSE_OPAQUE = ("string", "comment", "token_tree", "jsx_element", "preproc_arg", "preproc_def",
                "preproc_function_def")
ESCAPE_OPAQUE = ("string", "regex", "comment", "token_tree", "jsx_text", "html_character_reference", "preproc_arg")
KINDS = ("truncated", "prose", "html_escaped", "line_numbered")
ELSEWHERE = "cut_elsewhere"  # the first truncation drawn when it dropped no closer: reported, not counted


def repositories(dirs: list[Path]) -> dict[str, list[tuple[str, Path]]]:
    """Per repository name, its candidate (language, path): files of the 8 languages of 1-40 kB (C/C++
    `.h` files left out: they are as often C as C++)."""
    found: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    roots = [(d, True) for d in dirs] + [(r, False) for r in SYSTEM_ROOTS]
    for root, checkouts in roots:
        for path in sorted(root.rglob("*")):
            language = syntax.language_of(path.name)
            if language is None or language == "cpp" and path.suffix == ".h":
                continue
            try:
                if not (path.is_file() and 1000 <= path.stat().st_size <= 40000):
                    continue
            except OSError:
                continue
            parts = path.relative_to(root).parts
            if not checkouts:
                package = [i for i, part in enumerate(parts[:-1]) if part in ("site-packages", "node_modules")]
                parts = parts[package[-1] + 1:] if package else parts
            if len(parts) > 1:
                found[f"{root.name}/{parts[0]}"].append((language, path))
    return found


def split_repositories(repos: dict[str, list[tuple[str, Path]]]) -> dict[str, str]:
    """Repository name -> "tune" or "held-out": by main language, sorted by name, alternating."""
    by_language: dict[str, list[str]] = defaultdict(list)
    for name, files in repos.items():
        by_language[Counter(language for language, _ in files).most_common(1)[0][0]].append(name)
    return {name: ("tune", "held-out")[i % 2] for names in by_language.values() for i, name in enumerate(sorted(names))}


def draw(repos: dict[str, list[tuple[str, Path]]], names: list[str], per_language: int):
    """Per language, up to `per_language` distinct files with a clean own-language parse, drawn round robin
    over the shuffled repositories `names` (seeded); and per language the drawn files whose parse is not
    clean (those files, as (path, text))."""
    rng = random.Random(0)
    queues: dict[str, list[list[Path]]] = defaultdict(list)
    for name in sorted(names):
        per: dict[str, list[Path]] = defaultdict(list)
        for language, path in repos[name]:
            per[language].append(path)
        for language, paths in per.items():
            queues[language].append(rng.sample(paths, len(paths)))
    files: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    unclean: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for language, queue in sorted(queues.items()):
        rng.shuffle(queue)
        seen: set[str] = set()
        order = [q[i] for i in range(max(map(len, queue))) for q in queue if i < len(q)]
        for path in order:
            if len(files[language]) >= per_language:
                break
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text in seen:
                continue
            seen.add(text)
            if syntax.parse(text, language).clean:
                files[language].append((path, text))
            else:
                unclean[language].append((path, text))
    return files, unclean


def _byte_offsets(parsed: syntax.Parsed) -> list[int]:
    """The byte offset in `parsed.data` of each str offset of `parsed.text` past its BOM (and of its end)."""
    return list(itertools.accumulate((len(ch.encode("utf-8")) for ch in parsed.text[parsed.bom:]), initial=0))


def _inside(parsed: syntax.Parsed, at: int, kinds: tuple[str, ...]) -> bool:
    """Whether byte offset `at` lies strictly inside a node whose type contains one of `kinds`."""
    node = parsed.tree.root_node.descendant_for_byte_range(at, at)
    while node is not None:
        if node.start_byte < at < node.end_byte and any(k in node.type for k in kinds):
            return True
        node = node.parent
    return False


def drops_a_closer(parsed: syntax.Parsed, at: int) -> bool:
    """Whether cutting the text at byte offset `at` drops the closing delimiter of a construct whose
    opening delimiter it keeps (a cut in `serv|er[1]` keeps no opener: the prefix may be complete)."""
    node = parsed.tree.root_node.descendant_for_byte_range(at, at)
    while node is not None:
        if node.start_byte < at < node.end_byte:
            last = node.children[-1] if node.child_count else None
            opened = any(child.child_count == 0 and child.end_byte <= at and
                         (child.text in OPENERS or child.type == "string_start") for child in node.children)
            if last is not None and last.child_count == 0 and last.text in CLOSERS and opened:
                return True
            if last is None and "comment" in node.type and node.text.endswith(b"*/"):
                return True
        node = node.parent
    return False


def damaged(text: str, language: str, rng: random.Random) -> dict[str, str | None]:
    """Kind -> damaged copy of `text`, or None when no copy a parser can see could be made (module
    docstring); and under ELSEWHERE the first cut drawn when it dropped no closer (else None)."""
    parsed = syntax.parse(text, language)
    offsets = _byte_offsets(parsed)

    def byte_of(index: int) -> int:
        return offsets[max(index - parsed.bom, 0)]

    out: dict[str, str | None] = dict.fromkeys(KINDS + (ELSEWHERE,))
    for attempt in range(20):
        cut = rng.randint(int(0.3 * len(text)), int(0.7 * len(text)))
        if drops_a_closer(parsed, byte_of(cut)):
            out["truncated"] = text[:cut]
            break
        if attempt == 0:
            out[ELSEWHERE] = text[:cut]
    lines = text.split("\n")
    starts, offset = [], 0
    for i, line in enumerate(lines):
        if i and not _inside(parsed, byte_of(offset), PROSE_OPAQUE):
            starts.append(i)
        offset += len(line) + 1
    if starts:
        at = set(rng.sample(starts, min(len(starts), rng.randint(1, 2))))
        prose = [" ".join(rng.sample(SENTENCES, rng.randint(1, 3))) for _ in at]
        out["prose"] = "\n".join(
            part for i, line in enumerate(lines) for part in ([prose.pop()] if i in at else []) + [line])
    if any(ch in '<>&"' and not _inside(parsed, byte_of(i), ESCAPE_OPAQUE) for i, ch in enumerate(text)):
        out["html_escaped"] = html.escape(text, quote=True).replace("&#x27;", "'")
    gutter = rng.choice(GUTTERS)
    out["line_numbered"] = "\n".join(gutter.format(n=n) + line for n, line in enumerate(lines, 1))
    return out


def _validate_real(language: str, path: Path, text: str, split: str, misses: list[dict], kind: str = "real"):
    """validate(text) of a real file; a rejection is appended to `misses`."""
    check = validate(text)
    if not check.valid:
        misses.append({"split": split, "language": language, "kind": kind, "path": str(path),
                       "damage": check.damage, "error_share": check.error_share, "as": check.language})
    return check


def measure(files: dict[str, list[tuple[Path, str]]], unclean: dict[str, list[tuple[Path, str]]], split: str,
            misses: list[dict]) -> None:
    tally: dict[str, Counter] = defaultdict(Counter)  # language or kind -> tp, fn, fp, tn, skipped
    identified: dict[str, Counter] = defaultdict(Counter)
    for language, pairs in sorted(files.items()):
        for path, text in pairs:
            check = _validate_real(language, path, text, split, misses)
            tally[language]["tp" if check.valid else "fn"] += 1
            if is_template(path):
                tally["templates"]["tp" if check.valid else "fn"] += 1
            identified[language][check.language] += 1
            rng = random.Random(zlib.crc32(str(path).encode()))
            for kind, bad in damaged(text, language, rng).items():
                if bad is None:
                    tally[kind]["skipped"] += 1
                    continue
                check = validate(bad)
                outcome = "fp" if check.valid else "tn"
                tally[kind][outcome] += 1
                if kind == ELSEWHERE:
                    continue
                tally[language][outcome] += 1
                if check.valid:
                    misses.append({"split": split, "language": language, "kind": kind, "path": str(path),
                                   "as": check.language, "text": bad})
    positives = Counter(tp=sum(tally[lang]["tp"] for lang in files), fn=sum(tally[lang]["fn"] for lang in files))
    print(f"\n[{split}]")
    print(f"{'language':<14}{'files':>6}{'damaged':>9}{'precision':>11}{'recall':>8}  identified as")
    total = Counter()
    for language in sorted(files):
        t = tally[language]
        total.update(t)
        print(f"{language:<14}{t['tp'] + t['fn']:>6}{t['fp'] + t['tn']:>9}{_p(t):>11.3f}{_r(t):>8.3f}  "
              f"{dict(identified[language])}")
    print(f"{'all':<14}{total['tp'] + total['fn']:>6}{total['fp'] + total['tn']:>9}{_p(total):>11.3f}{_r(total):>8.3f}"
          "  (clean-parse positives)")
    every = Counter(tp=total["tp"], fn=total["fn"], fp=total["fp"], tn=total["tn"])
    for language in sorted(unclean):
        checks = [(path, _validate_real(language, path, text, split, misses, "real_unclean").valid)
                  for path, text in unclean[language]]
        valid = sum(ok for _, ok in checks)
        every.update(tp=valid, fn=len(checks) - valid)
        templates = [ok for path, ok in checks if is_template(path)]
        tally["templates"].update(tp=sum(templates), fn=len(templates) - sum(templates))
        print(f"{language:<14}{len(checks):>6} drawn files not parsing clean: {valid} accepted")
    print(f"{'all drawn':<14}{every['tp'] + every['fn']:>6}{every['fp'] + every['tn']:>9}{_p(every):>11.3f}"
          f"{_r(every):>8.3f}  (every drawn real file a positive)")
    templates = tally["templates"]
    rest = Counter(tp=every["tp"] - templates["tp"], fn=every["fn"] - templates["fn"], fp=every["fp"], tn=every["tn"])
    print(f"{'no templates':<14}{rest['tp'] + rest['fn']:>6}{rest['fp'] + rest['tn']:>9}{_p(rest):>11.3f}"
          f"{_r(rest):>8.3f}  (all drawn less {templates['tp'] + templates['fn']} template files, "
          f"{templates['tp']} of them accepted)")
    print(f"{'damage kind':<14}{'copies':>6}{'skipped':>9}{'caught':>11}{'P (only this kind)':>20}")
    for kind in KINDS + (ELSEWHERE,):
        t = tally[kind]
        alone = positives + Counter(fp=t["fp"], tn=t["tn"])
        print(f"{kind:<14}{t['fp'] + t['tn']:>6}{t['skipped']:>9}{t['tn'] / max(t['fp'] + t['tn'], 1):>11.3f}"
              f"{_p(alone) if kind in KINDS else float('nan'):>20.3f}")


def is_template(path: Path) -> bool:
    """Whether a file is a code generator's input (a directory of its path is named `templates`, as
    torchgen's `${placeholder}` files): not code until generated. Decided by path alone, before the run."""
    return "templates" in path.parts[:-1]


def _p(t: Counter) -> float:
    return t["tp"] / max(t["tp"] + t["fp"], 1)


def _r(t: Counter) -> float:
    return t["tp"] / max(t["tp"] + t["fn"], 1)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("per_language", nargs="?", type=int, default=40)
    args.add_argument("dirs", nargs="*", type=Path)
    args.add_argument("--misses", type=Path, help="write every misclassified file or copy here (JSONL)")
    opts = args.parse_args()
    repos = repositories(opts.dirs)
    splits = split_repositories(repos)
    misses: list[dict] = []
    for split in ("tune", "held-out"):
        names = [name for name, s in splits.items() if s == split]
        files, unclean = draw(repos, names, opts.per_language)
        print(f"\n{split}: {len(names)} repositories; checkouts: "
              + ", ".join(sorted(n.split("/", 1)[1] for n in names if n.split("/")[0] in {d.name for d in opts.dirs})))
        print("drawn files whose own-language parse is not clean: "
              + ", ".join(f"{lang} {len(unclean[lang])}/{len(unclean[lang]) + len(files[lang])}" for lang in sorted(files)))
        measure(files, unclean, split, misses)
    if opts.misses:
        opts.misses.write_text("".join(json.dumps(m) + "\n" for m in misses))


if __name__ == "__main__":
    main()
