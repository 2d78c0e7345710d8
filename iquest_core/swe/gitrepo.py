"""Git plumbing for task mining: first-parent history, per-file change statistics, diffs, trees exported
without .git, and patches applied to plain directories."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class GitError(ValueError):
    """A git command failed (its stderr is the message)."""


def git(repo: str | Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True,
                          env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    if proc.returncode:
        raise GitError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def check_repository(repo: str | Path) -> Path:
    """The repository's top-level directory; ValueError naming the path when it is not a git work tree
    with at least one commit."""
    path = Path(repo)
    if not path.is_dir():
        raise ValueError(f"REPO_DIR: not a directory: {repo}")
    try:
        top = git(path, "rev-parse", "--show-toplevel").decode().strip()
        git(path, "rev-parse", "--verify", "HEAD^{commit}")
    except GitError:
        raise ValueError(f"REPO_DIR: not a git repository with commits: {repo}") from None
    return Path(top)


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    subject: str


def first_parent_history(repo: Path, rev: str = "HEAD") -> list[Commit]:
    """Commits reachable from rev along first parents, newest first."""
    out = git(repo, "log", "--first-parent", "--format=%H%x00%P%x00%s%x00", rev).decode(errors="replace")
    fields = out.split("\x00")
    return [Commit(fields[i].strip(), tuple(fields[i + 1].split()), fields[i + 2])
            for i in range(0, len(fields) - 2, 3)]


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int
    deleted: int
    binary: bool


def changed_files(repo: Path, parent: str, commit: str) -> list[FileChange]:
    """Files that differ between parent and commit (renames as a deletion and an addition)."""
    out = git(repo, "diff", "--numstat", "-z", "--no-renames", parent, commit).decode(errors="surrogateescape")
    changes = []
    for entry in filter(None, out.split("\x00")):
        added, deleted, path = entry.split("\t", 2)
        binary = added == "-"
        changes.append(FileChange(path, 0 if binary else int(added), 0 if binary else int(deleted), binary))
    return changes


def diff(repo: Path, a: str, b: str, paths: list[str]) -> str:
    """The unified diff from a to b restricted to paths ("" when paths is empty)."""
    if not paths:
        return ""
    return git(repo, "diff", "--no-renames", "--no-color", a, b, "--", *paths).decode("utf-8", errors="surrogateescape")


def export_tree(repo: Path, commit: str, dest: Path) -> None:
    """Write every file of commit's tree into dest (created) as plain files: no .git, no history (unlike
    `git archive`, files marked export-ignore are kept: the code may need them)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iquest-swe-index-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(scratch, "index"), "LC_ALL": "C"}
        for args in (["read-tree", commit], ["checkout-index", "-a", "-f", f"--prefix={dest.resolve()}/"]):
            proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env)
            if proc.returncode:
                raise GitError(f"git {args[0]}: {proc.stderr.decode(errors='replace').strip()}")


def apply_patch(directory: Path, patch: str, *, reverse: bool = False) -> None:
    """Apply a unified diff to a plain directory (never to an enclosing repository). GitError when it
    does not apply cleanly; then nothing was changed."""
    if not patch:
        return
    directory = directory.resolve()
    proc = subprocess.run(["git", "apply", *(["-R"] if reverse else []), "--whitespace=nowarn", "-"],
                          cwd=directory, input=patch.encode("utf-8", errors="surrogateescape"), capture_output=True,
                          env={**os.environ, "GIT_CEILING_DIRECTORIES": str(directory.parent), "LC_ALL": "C"})
    if proc.returncode:
        raise GitError(f"git apply: {proc.stderr.decode(errors='replace').strip()}")
