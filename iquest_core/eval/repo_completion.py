"""`iquest eval repo-completion`: next-line completion in a local repository's files, with and without
cross-file context, by CrossCodeEval's protocol (exact match and edit similarity of the completed line).

    iquest eval repo-completion --repo DIR --model HF_DIR --output DIR [--points 200] [--seed 0]
    iquest eval repo-completion --repo DIR --completions FILE.jsonl --output DIR  # {"id", "completion"}
    iquest eval repo-completion --repo DIR --canonical --output DIR               # the true lines

Completion points: the repository's files of a supported language (data/syntax.py LANGUAGES, by
extension; read as data/sources.py reads a directory), lines that, like CrossCodeEval's, need another
file: the line names an identifier that another file of the repository defines (after def, class, fn,
func, function, struct, ... or assigned at a line's start; never a keyword) and this file does not; not imports or
comments. Up to `--points` of them, drawn with `--seed`, at most `--per-file` per file.
The model sees the left context only (the file up to the line's start, its last `--prefix-tokens`
tokens) and its first generated line is the completion. Two settings per point:

- in-file: `<|repo_name|>{repo}\\n<|file_sep|>{path}\\n{left context}`;
- cross-file: the same with the context files that repository-level FIM selects for that file
  (fim.ContextIndex: the most similar files by identifier Jaccard, within `--context-tokens`) as
  `<|file_sep|>{path}\\n{content}\\n` parts before the target file, exactly as in training.

Scores compare the completion and the true line with surrounding whitespace stripped: exact match (EM)
and edit similarity (ES = 1 - Levenshtein distance / the longer length). Item ids are "path:line/setting"
(line 1-based). Writes DIR/items.jsonl ({"id", "path", "line", "setting", "target", "completion", "em",
"es", "context_files"}) and DIR/summary.json ({"points", "settings": {name: {"items", "em", "es"}}}).
"""

from __future__ import annotations

import json
import keyword
import random
import re
import sys
import time
from pathlib import Path

from iquest_core.command_line import CommandParser, run_command
from iquest_core.data import fim
from iquest_core.data.sources import read_documents
from iquest_core.eval import common

SETTINGS = ("in-file", "cross-file")
MAX_FILE_CHARS = 200_000
MIN_LINE_CHARS = 6
_WORD = re.compile(r"[A-Za-z_]\w*")
_SKIPPED = ("#", "//", "/*", "*", '"""', "'''", "import ", "from ", "use ", "using ", "package ")
_DEFINITION = re.compile(r"\b(?:def|class|fn|func|function|struct|enum|interface|trait|type)\s+([A-Za-z_]\w*)")
_KEYWORDS = frozenset(keyword.kwlist) | {"int", "void", "const", "auto", "let", "var", "new", "this", "self"}
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)\s*[:=]", re.MULTILINE)


def load_files(repo: Path) -> dict[str, str]:
    """path -> content of the repository's files of a supported language; ValueError naming --repo when
    it is not a directory or has none."""
    if not repo.is_dir():
        raise ValueError(f"--repo: {repo} is not a directory")
    files = {d.path: d.content for d in read_documents([repo])
             if fim.language_of(d.path) and len(d.content) <= MAX_FILE_CHARS}
    if not files:
        raise ValueError(f"--repo: {repo} has no files of a supported language ({', '.join(fim.LANGUAGES)})")
    return files


def definitions(text: str) -> set[str]:
    """Names the file defines: after a definition keyword (def, class, fn, func, function, struct, ...)
    or assigned at the start of a line (module-level constants)."""
    return (set(_DEFINITION.findall(text)) | set(_ASSIGNED.findall(text))) - _KEYWORDS


def candidate_lines(text: str, defined_elsewhere: set[str]) -> list[int]:
    """0-based numbers of the lines that need another file: not the first line, not blank, short, a
    comment or an import, and naming an identifier that another file defines and this one does not."""
    foreign = defined_elsewhere - definitions(text)
    out = []
    for number, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if number > 0 and len(stripped) >= MIN_LINE_CHARS and not stripped.startswith(_SKIPPED) \
                and any(w in foreign for w in _WORD.findall(line)):
            out.append(number)
    return out


def completion_points(files: dict[str, str], *, points: int, per_file: int, seed: int) -> list[dict]:
    """Points {"path", "line" (1-based), "prefix", "target"}: at most per_file per file, `points` in all,
    drawn with `seed`, in path and line order."""
    defined = set().union(*(definitions(text) for text in files.values()))
    rng = random.Random(seed)
    pool = []
    for path in sorted(files):
        lines = candidate_lines(files[path], defined)
        pool += [(path, n) for n in sorted(rng.sample(lines, min(per_file, len(lines))))]
    chosen = sorted(rng.sample(pool, min(points, len(pool))))
    out = []
    for path, number in chosen:
        lines = files[path].split("\n")
        out.append({"path": path, "line": number + 1, "prefix": "\n".join(lines[:number]) + "\n",
                    "target": lines[number]})
    return out


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len(a), len(b)); 1.0 for two empty strings."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1.0 - previous[-1] / max(len(a), len(b))


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def prompt_ids(point: dict, repo: str, context: list[tuple[str, str]], tokenizer, prefix_tokens: int) -> list[int]:
    """The repository-level template up to the completion point: repo name, context files, the target
    path, then the last prefix_tokens tokens of the left context."""
    head = [(True, "<|repo_name|>"), (False, f"{repo}\n")]
    for path, content in context:
        head += [(True, "<|file_sep|>"), (False, f"{path}\n{content}\n")]
    head += [(True, "<|file_sep|>"), (False, f"{point['path']}\n")]
    left = tokenizer.encode(point["prefix"])
    return tokenizer.encode_parts(head) + left[max(0, len(left) - prefix_tokens):]


def item_id(point: dict, setting: str) -> str:
    return f"{point['path']}:{point['line']}/{setting}"


def _rows(args, files: dict[str, str], points: list[dict]) -> list[dict]:
    rows = [{"id": item_id(p, s), "path": p["path"], "line": p["line"], "setting": s, "target": p["target"],
             "context_files": []} for p in points for s in SETTINGS]
    by_id = {item_id(p, s): p for p in points for s in SETTINGS}
    repo, indexes = args.repo.resolve().name, {}

    def prompt(row: dict, tokenizer) -> list[int]:
        context = []
        if row["setting"] == "cross-file":
            index = indexes.setdefault("index", fim.ContextIndex(files, tokenizer))
            context = index.select(row["path"], budget_tokens=args.context_tokens)
        row["context_files"] = [path for path, _ in context]
        return prompt_ids(by_id[row["id"]], repo, context, tokenizer, args.prefix_tokens)

    completions = common.completions(args, rows, "repo-completion", canonical=lambda r: r["target"], prompt=prompt,
                                     stop=lambda text: "\n" in text,
                                     stop_tokens=("<|im_end|>", "<|endoftext|>", "<|file_sep|>"))
    for row, completion in zip(rows, completions):
        line = first_line(completion)
        row.update(completion=line, em=float(line.strip() == row["target"].strip()),
                   es=edit_similarity(line.strip(), row["target"].strip()))
    return rows


def summarize(rows: list[dict]) -> dict:
    return {"points": len(rows) // len(SETTINGS), "settings": common.rates(rows, "setting", ["em", "es"])}


def repo_completion_main(args) -> dict:
    for name in ("points", "per_file", "prefix_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive int, got {getattr(args, name)}")
    if args.context_tokens < 0:
        raise ValueError(f"--context-tokens: expected >= 0, got {args.context_tokens}")
    files = load_files(args.repo)
    points = completion_points(files, points=args.points, per_file=args.per_file, seed=args.seed)
    if not points:
        raise ValueError(f"--repo: {args.repo} has no line that names an identifier of another file")
    start = time.monotonic()
    rows = _rows(args, files, points)
    summary = {**summarize(rows), "files": len(files), "seconds": round(time.monotonic() - start, 2)}
    return common.write_outputs(args.output, rows, summary)


def _parser() -> CommandParser:
    parser = CommandParser(prog="iquest eval repo-completion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a local repository (directory)")
    common.add_source_arguments(parser, completions_help="JSONL of {id, completion} (the completed line)",
                                limit=False)
    parser.set_defaults(max_new_tokens=48)
    parser.add_argument("--points", type=int, default=200, help="completion points in all")
    parser.add_argument("--per-file", type=int, default=4, help="at most this many points per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix-tokens", type=int, default=1024, help="left-context tokens kept")
    parser.add_argument("--context-tokens", type=int, default=1024, help="cross-file context budget")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_command("iquest eval repo-completion", lambda: print(json.dumps(repo_completion_main(args))))


if __name__ == "__main__":
    sys.exit(main())
