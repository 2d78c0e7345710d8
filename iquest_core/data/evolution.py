"""Repository-evolution triples (R_start, P, R_end) from git history.

    counts = Counter()
    for t in triples("path/to/repo", seed=0, counts=counts):
        t.start_commit, t.end_commit, t.patch, t.start_files, t.end_files, t.messages
    counts   # {"triples": 7, "no_meaningful_change": 2, "excluded_lockfile": 1, ...}

History: HEAD's first-parent history, index 0 = the root commit, read with git plumbing (rev-list, log
--numstat, diff, cat-file); only the files a triple touches are ever read. A merge commit on that history
counts as one step, diffed against its first parent (counted as "merge_commits" inside triples).

Start: the indices i with start_range[0] <= i / (n - 1) <= start_range[1] (n commits, i < n - 1), visited
in an order shuffled by `seed`; each start gives at most one triple.

End (forward search, `SearchCriteria`): walking j = start + 1, start + 2, ... up to max_commits steps,
the first j at which the commits so far change at least min_code_lines lines of code (added + deleted,
whitespace-only changes ignored; code = a known source extension, not a lockfile, not under a vendored
directory). The candidate is then checked on the real diff start..end: at least min_code_lines changed
code lines ignoring whitespace (else "no_meaningful_change"), at most max_files files and max_lines
changed lines in P (else "change_too_large").

P: `git diff --no-renames --text` from start to end, in git's format (a/ b/ prefixes), restricted to the
changed paths that are regular files, text (no NUL byte) and UTF-8 on both sides, and neither lockfiles
nor vendored. The other changed paths are left out and counted as "excluded_<reason>" (binary,
not_utf8, lockfile, vendored, symlink, submodule). A rename is a deletion plus an addition. `git apply`
of P on R_start gives R_end on every path P touches; start_files/end_files hold those paths' texts
(absent = the file does not exist on that side).

Not a git repository: ValueError. Empty repository or no start in the window: zero triples with the
reason counted ("empty_repository", "history_too_short").
"""

from __future__ import annotations

import math
import random
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath

CODE_EXTENSIONS = frozenset(
    ".py .pyi .pyx .c .h .cc .cpp .cxx .hpp .hh .hxx .cu .cuh .java .kt .kts .scala .go .rs .js .jsx .mjs .cjs "
    ".ts .tsx .cs .rb .php .swift .m .mm .sh .bash .zsh .lua .r .jl .hs .ml .mli .ex .exs .erl .clj .dart .sql "
    ".pl .pm .f90 .f .zig .nim .vue .svelte .groovy .proto .cmake".split())
CODE_FILENAMES = frozenset({"CMakeLists.txt", "Makefile", "Dockerfile"})
LOCKFILES = frozenset({"package-lock.json", "yarn.lock", "pnpm-lock.yaml", "Cargo.lock", "poetry.lock",
                       "Pipfile.lock", "composer.lock", "Gemfile.lock", "go.sum", "uv.lock", "bun.lockb"})
VENDORED_DIRECTORIES = frozenset({"vendor", "vendored", "third_party", "third-party", "thirdparty",
                                  "node_modules", "external", "extern"})
_GIT = ["git", "-c", "core.quotePath=true", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"]
_NULL_OID = "0" * 40


@dataclass(frozen=True)
class SearchCriteria:
    """The forward search for a triple's end (module docstring)."""

    min_code_lines: int = 10
    max_lines: int = 2000
    max_files: int = 50
    max_commits: int = 16


@dataclass(frozen=True)
class Triple:
    repo: str                     # the repository directory's name
    start_commit: str             # full hex ids on HEAD's first-parent history
    end_commit: str
    start_index: int              # positions on that history (0 = root)
    end_index: int
    history_length: int
    patch: str                    # unified diff, git format, R_start -> R_end
    start_files: dict[str, str]   # path -> text of the files P touches, at start (absent = not there)
    end_files: dict[str, str]     # likewise at end
    messages: list[str]           # messages of the commits start+1 .. end, oldest first
    excluded: dict[str, str]      # changed paths left out of P -> reason

    def to_json(self) -> dict:
        return asdict(self)


def path_kind(path: str) -> str:
    """"lockfile", "vendored", "code" or "other" for a repository path."""
    p = PurePosixPath(path)
    if p.name in LOCKFILES:
        return "lockfile"
    if any(part in VENDORED_DIRECTORIES for part in p.parts[:-1]) or p.name.endswith((".min.js", ".min.css")):
        return "vendored"
    if p.suffix.lower() in CODE_EXTENSIONS or p.name in CODE_FILENAMES:
        return "code"
    return "other"


def triples(repo_path: str | Path, *, seed: int = 0, start_range: tuple[float, float] = (0.4, 0.8),
            max_triples: int | None = None, counts: Counter | None = None, **search: int) -> Iterator[Triple]:
    """Triples of one repository (module docstring); `search` sets SearchCriteria fields; reasons for
    starts without a triple and for excluded paths are added to `counts`. Bad arguments and a path that
    is not a git repository raise ValueError at the call, before iteration."""
    criteria = check_options(start_range=start_range, max_triples=max_triples, **search)
    repo = _Repository(repo_path)
    return _triples(repo, seed, start_range, max_triples, Counter() if counts is None else counts, criteria)


def check_options(*, start_range: tuple[float, float] = (0.4, 0.8), max_triples: int | None = None,
                  **search: int) -> SearchCriteria:
    """The search criteria of `triples` arguments; ValueError naming a bad argument."""
    _check_range(start_range)
    if max_triples is not None and (isinstance(max_triples, bool) or not isinstance(max_triples, int)
                                    or max_triples < 0):
        raise ValueError(f"max_triples: expected None or an int >= 0, got {max_triples!r}")
    return _criteria(search)


def _triples(repo: _Repository, seed: int, start_range: tuple[float, float], max_triples: int | None,
             counts: Counter, criteria: SearchCriteria) -> Iterator[Triple]:
    lo_frac, hi_frac = _check_range(start_range)
    history = repo.first_parent_history()
    if not history:
        counts["empty_repository"] += 1
        return
    n = len(history)
    lo, hi = math.ceil(lo_frac * (n - 1)), min(math.floor(hi_frac * (n - 1)), n - 2)
    if n < 2 or lo > hi:
        counts["history_too_short"] += 1
        return
    top = min(hi + criteria.max_commits, n - 1)
    code_lines = repo.code_lines_per_commit(history[lo], history[top])
    starts = list(range(lo, hi + 1))
    random.Random(seed).shuffle(starts)
    emitted = 0
    for start in starts:
        if max_triples is not None and emitted >= max_triples:
            return
        end = _search_end(history, code_lines, start, criteria)
        triple = None if end is None else repo.triple(history, start, end, criteria, counts)
        if triple is not None:
            emitted += 1
            counts["triples"] += 1
            yield triple
        elif end is None:
            counts["no_meaningful_change"] += 1


def _criteria(search: dict) -> SearchCriteria:
    names = {f.name for f in fields(SearchCriteria)}
    for key, value in search.items():
        if key not in names:
            raise ValueError(f"{key}: not a search criterion; expected one of {sorted(names)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}: expected an int >= 1, got {value!r}")
    return SearchCriteria(**search)


def _check_range(start_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in start_range)
    except (TypeError, ValueError):
        raise ValueError(f"start_range: expected (low, high) fractions, got {start_range!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"start_range: expected 0 <= low <= high <= 1, got {start_range!r}")
    return lo, hi


def _search_end(history: list[str], code_lines: dict[str, int], start: int, criteria: SearchCriteria) -> int | None:
    total = 0
    for end in range(start + 1, min(start + criteria.max_commits, len(history) - 1) + 1):
        total += code_lines.get(history[end], 0)
        if total >= criteria.min_code_lines:
            return end
    return None


class _Repository:
    """git plumbing on one repository."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"repo_path: {path} is not a directory (expected a git repository)")
        probe = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--git-dir"], capture_output=True)
        if probe.returncode != 0:
            raise ValueError(f"repo_path: {path} is not a git repository")
        top = self._git("rev-parse", "--show-toplevel", check=False).strip()
        self.name = Path(top).name if top else self.path.resolve().name.removesuffix(".git")

    def _git(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        return self._git_bytes(*args, stdin=stdin, check=check).decode("utf-8", errors="surrogateescape")

    def _git_bytes(self, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes:
        result = subprocess.run([*_GIT, "-C", str(self.path), *args], input=stdin, capture_output=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args[:3])} failed in {self.path}: {result.stderr.decode(errors='replace')}")
        return result.stdout

    def first_parent_history(self) -> list[str]:
        if self._git_bytes("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False).strip() == b"":
            return []
        return self._git("rev-list", "--first-parent", "--reverse", "HEAD").split()

    def code_lines_per_commit(self, first: str, last: str) -> dict[str, int]:
        """Changed code lines (whitespace ignored) of each first-parent commit in (first, last]."""
        log = self._git("log", "--first-parent", "--diff-merges=first-parent", "--no-renames", "-w", "--numstat",
                        "--format=%x01%H", f"{first}..{last}")
        lines: dict[str, int] = {}
        commit = None
        for line in log.splitlines():
            if line.startswith("\x01"):
                commit = line[1:]
                lines[commit] = 0
            elif line and commit is not None:
                added, deleted, path = line.split("\t", 2)
                if added != "-" and path_kind(_unquote(path)) == "code":
                    lines[commit] += int(added) + int(deleted)
        return lines

    def triple(self, history: list[str], start: int, end: int, criteria: SearchCriteria,
               counts: Counter) -> Triple | None:
        a, b = history[start], history[end]
        changes = self._raw_diff(a, b)
        blobs = self._blobs([oid for *_, old, new in changes for oid in (old, new) if oid != _NULL_OID])
        excluded: dict[str, str] = {}
        start_files: dict[str, str] = {}
        end_files: dict[str, str] = {}
        for path, old_mode, new_mode, old, new in changes:
            reason = _exclusion(path, old_mode, new_mode, blobs.get(old), blobs.get(new))
            if reason is not None:
                excluded[path] = reason
                continue
            if old != _NULL_OID:
                start_files[path] = blobs[old].decode("utf-8")
            if new != _NULL_OID:
                end_files[path] = blobs[new].decode("utf-8")
        paths = sorted(set(start_files) | set(end_files))
        if not paths or self._code_lines(a, b, paths) < criteria.min_code_lines:
            counts["no_meaningful_change"] += 1
            return None
        changed = self._changed_lines(a, b, paths)
        if len(paths) > criteria.max_files or changed > criteria.max_lines:
            counts["change_too_large"] += 1
            return None
        for reason in excluded.values():
            counts[f"excluded_{reason}"] += 1
        counts["merge_commits"] += self._merges(a, b)
        patch = self._git("diff", "--no-renames", "--text", "--no-color", "--no-ext-diff", "--no-textconv",
                          "--no-relative", "--src-prefix=a/", "--dst-prefix=b/", a, b, "--",
                          *(f":(literal){p}" for p in paths))
        return Triple(repo=self.name, start_commit=a, end_commit=b, start_index=start, end_index=end,
                      history_length=len(history), patch=patch, start_files=start_files, end_files=end_files,
                      messages=self._messages(a, b), excluded=excluded)

    def _raw_diff(self, a: str, b: str) -> list[tuple[str, str, str, str, str]]:
        """(path, old mode, new mode, old blob, new blob) of every changed path."""
        fields_ = self._git("diff", "--raw", "-z", "--no-renames", "--no-abbrev", "--no-relative", a, b).split("\0")
        changes = []
        for header, path in zip(fields_[0::2], fields_[1::2]):
            old_mode, new_mode, old, new, _status = header.lstrip(":").split(" ")
            changes.append((path, old_mode, new_mode, old, new))
        return changes

    def _blobs(self, oids: list[str]) -> dict[str, bytes]:
        if not oids:
            return {}
        out = self._git_bytes("cat-file", "--batch", stdin="".join(f"{o}\n" for o in oids).encode())
        blobs, pos = {}, 0
        while pos < len(out):
            header_end = out.index(b"\n", pos)
            oid, _kind, size = out[pos:header_end].decode().split(" ")
            start = header_end + 1
            blobs[oid] = out[start:start + int(size)]
            pos = start + int(size) + 1
        return blobs

    def _numstat(self, a: str, b: str, paths: list[str], *extra: str) -> list[tuple[int, int, str]]:
        out = self._git("diff", "--numstat", "-z", "--no-renames", "--text", "--no-relative", *extra, a, b, "--",
                        *(f":(literal){p}" for p in paths))
        rows = []
        for record in out.split("\0")[:-1]:
            added, deleted, path = record.split("\t", 2)
            rows.append((int(added), int(deleted), path))
        return rows

    def _code_lines(self, a: str, b: str, paths: list[str]) -> int:
        return sum(x + y for x, y, p in self._numstat(a, b, paths, "-w") if path_kind(p) == "code")

    def _changed_lines(self, a: str, b: str, paths: list[str]) -> int:
        return sum(x + y for x, y, _ in self._numstat(a, b, paths))

    def _merges(self, a: str, b: str) -> int:
        return len(self._git("rev-list", "--first-parent", "--merges", f"{a}..{b}").split())

    def _messages(self, a: str, b: str) -> list[str]:
        out = self._git("log", "--first-parent", "--reverse", "--format=%B%x00", f"{a}..{b}")
        return [m.strip() for m in out.split("\0")[:-1]]


def _exclusion(path: str, old_mode: str, new_mode: str, old: bytes | None, new: bytes | None) -> str | None:
    modes = {old_mode, new_mode} - {"000000"}
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a path whose bytes are not UTF-8 (decoded with surrogateescape)
        return "not_utf8"
    if "160000" in modes:
        return "submodule"
    if "120000" in modes:
        return "symlink"
    kind = path_kind(path)
    if kind in ("lockfile", "vendored"):
        return kind
    for data in (old, new):
        if data is None:
            continue
        if b"\0" in data:
            return "binary"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8"
    return None


def _unquote(path: str) -> str:
    """A path as git prints it in --numstat (C-quoted when it has unusual bytes) back to its text."""
    if not (path.startswith('"') and path.endswith('"')):
        return path
    raw = path[1:-1].encode("latin-1", errors="surrogateescape").decode("unicode_escape").encode("latin-1")
    return raw.decode("utf-8", errors="surrogateescape")


def format_triple_parts(t: Triple, tokenizer, *, budget_tokens: int) -> list[tuple[bool, str]]:
    """The training text of a triple as (is_special, string) parts (encode with tokenizer.encode_parts):

        <|repo_name|>{repo}\\n
        <|file_sep|>{path}\\n{text at start}\\n        one per file P touches that exists at start, by path
        <|im_start|>commits\\n{messages, oldest first, blank-line separated}\\n<|im_end|>\\n
        <|im_start|>patch\\n{P}<|im_end|>

    Within budget_tokens: start files are dropped whole, largest token count first (ties: later path
    first), until the text fits; ValueError if it does not fit even without them."""
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise ValueError(f"budget_tokens: expected an int >= 1, got {budget_tokens!r}")
    head = [(True, "<|repo_name|>"), (False, f"{t.repo}\n")]
    tail = [(True, "<|im_start|>"), (False, "commits\n" + "\n\n".join(t.messages) + "\n"), (True, "<|im_end|>"),
            (False, "\n"), (True, "<|im_start|>"), (False, "patch\n" + t.patch), (True, "<|im_end|>")]
    files = {path: [(True, "<|file_sep|>"), (False, f"{path}\n{text}\n")] for path, text in sorted(t.start_files.items())}
    cost = {path: len(tokenizer.encode_parts(parts)) for path, parts in files.items()}
    total = len(tokenizer.encode_parts(head + tail)) + sum(cost.values())
    for path in sorted(cost, key=lambda p: (cost[p], p), reverse=True):
        if total <= budget_tokens:
            break
        total -= cost.pop(path)
    if total > budget_tokens:
        raise ValueError(f"budget_tokens: the triple needs {total} tokens without start files, got {budget_tokens}")
    return head + [part for path in sorted(cost) for part in files[path]] + tail


def format_triple(t: Triple, tokenizer, *, budget_tokens: int) -> str:
    """The training text of a triple (layout: format_triple_parts), special tokens written out."""
    return "".join(piece for _, piece in format_triple_parts(t, tokenizer, budget_tokens=budget_tokens))
