"""The agent's tools over a workspace, as JSON actions `{"tool": NAME, ...arguments}`:

    bash(command, timeout_s=30)    a shell command in the sandbox (cwd: the workspace root)
    view(path, range=None)         a file with line numbers (range [first, last], 1-based), or a directory listing
    str_replace(path, old, new)    replace the one occurrence of old
    create(path, text)             write a file (parents created)
    insert(path, line, text)       insert text after line (0: at the top)
    search(pattern, path=".")      grep -rnE in the sandbox
    submit()                       end the episode (handled by the environment)

Paths are relative to the workspace (or absolute under /workspace) and may not leave it, also not through
a symbolic link. A malformed action or a failing tool gives an error observation (ActionError's text), and
every observation is cut to its first and last lines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iquest_core.sandbox import run_command
from iquest_core.sandbox.command import WORKSPACE

TOOL_ARGS: dict[str, dict[str, tuple[type, ...]]] = {
    "bash": {"command": (str,), "timeout_s": (int, float)},
    "view": {"path": (str,), "range": (list,)},
    "str_replace": {"path": (str,), "old": (str,), "new": (str,)},
    "create": {"path": (str,), "text": (str,)},
    "insert": {"path": (str,), "line": (int,), "text": (str,)},
    "search": {"pattern": (str,), "path": (str,)},
    "submit": {},
}
OPTIONAL = {("bash", "timeout_s"), ("view", "range"), ("search", "path")}
MAX_TOOL_TIMEOUT_S = 120.0
TOOLS_HELP = """Tools (one JSON action per turn, as {"name": TOOL, "arguments": {...}} in a tool call):
- bash(command, timeout_s=30): run a shell command in the repository (no network, no git history)
- view(path, range=None): show a file with line numbers (range [first, last]) or list a directory
- str_replace(path, old, new): replace the unique occurrence of old with new
- create(path, text): write a new file
- insert(path, line, text): insert text after line (0: at the top)
- search(pattern, path="."): grep -rnE pattern
- submit(): finish; the hidden tests then run"""


class ActionError(ValueError):
    """A malformed action or a tool that could not do what was asked; its text is the observation."""


def parse_action(action: Any) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of a {"tool": ..., **arguments} action, checked against TOOL_ARGS."""
    if not isinstance(action, dict):
        raise ActionError(f"error: an action is a JSON object {{\"tool\": NAME, ...}}, got {type(action).__name__}")
    name = action.get("tool")
    if name not in TOOL_ARGS:
        raise ActionError(f"error: unknown tool {name!r}; tools: {', '.join(TOOL_ARGS)}")
    args = {k: v for k, v in action.items() if k != "tool"}
    spec = TOOL_ARGS[name]
    for key, value in args.items():
        if key not in spec:
            raise ActionError(f"error: {name}: unknown argument {key!r}; arguments: {', '.join(spec) or 'none'}")
        if isinstance(value, bool) or not isinstance(value, spec[key]):
            raise ActionError(f"error: {name}.{key}: expected {spec[key][0].__name__}, got {type(value).__name__}")
    missing = [k for k in spec if k not in args and (name, k) not in OPTIONAL]
    if missing:
        raise ActionError(f"error: {name}: missing argument {missing[0]!r}")
    return name, args


def truncate(text: str, *, head: int = 40, tail: int = 40, max_line_chars: int = 400) -> str:
    """text with at most head + tail lines (the middle replaced by a note), long lines cut."""
    lines = [line if len(line) <= max_line_chars else line[:max_line_chars] + " [...]" for line in text.splitlines()]
    if len(lines) > head + tail:
        lines = [*lines[:head], f"[... {len(lines) - head - tail} lines omitted ...]", *lines[-tail:]]
    return "\n".join(lines)


class Tools:
    """The tools over one workspace directory, run with the given sandbox mounts and variables."""

    def __init__(self, workspace: Path, ro_binds: dict[str, str], variables: dict[str, str]) -> None:
        self.root = workspace.resolve()
        self.ro_binds, self.variables = ro_binds, variables

    def run(self, name: str, args: dict[str, Any]) -> str:
        return truncate(getattr(self, name)(**args))

    def _path(self, path: str) -> Path:
        if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
            path = path[len(WORKSPACE):].lstrip("/") or "."
        target = Path(os.path.realpath(self.root / path))
        if target != self.root and self.root not in target.parents:
            raise ActionError(f"error: path {path!r} is outside the workspace")
        return target

    def _sandboxed(self, argv: list[str], timeout_s: float) -> str:
        result = run_command(argv, workdir=self.root, ro_binds=self.ro_binds, env=self.variables, timeout_s=timeout_s)
        if result.timed_out:
            return f"[timed out after {timeout_s:g}s]\n{result.stdout}{result.stderr}"
        return f"[exit code {result.returncode}]\n{result.stdout}{result.stderr}"

    def bash(self, command: str, timeout_s: float = 30.0) -> str:
        if not 0 < timeout_s <= MAX_TOOL_TIMEOUT_S:
            raise ActionError(f"error: bash.timeout_s: expected seconds in (0, {MAX_TOOL_TIMEOUT_S:g}]")
        return self._sandboxed(["bash", "-c", command], timeout_s)

    def search(self, pattern: str, path: str = ".") -> str:
        relative = os.path.relpath(self._path(path), self.root)
        return self._sandboxed(["grep", "-rnE", "--", pattern, relative], 30.0)

    def view(self, path: str, range: list | None = None) -> str:  # noqa: A002 - the tool's argument name
        target = self._path(path)
        if target.is_dir():
            entries = sorted(str(p.relative_to(target)) + ("/" if p.is_dir() else "")
                             for p in target.rglob("*") if len(p.relative_to(target).parts) <= 2)
            return "\n".join(entries)
        lines = self._read(target).splitlines()
        first, last = 1, len(lines)
        if range is not None:
            if len(range) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in range):
                raise ActionError("error: view.range: expected [first, last] line numbers")
            first, last = max(1, range[0]), min(len(lines), range[1] if range[1] > 0 else len(lines))
        return "\n".join(f"{n:6d}\t{line}" for n, line in enumerate(lines[first - 1:last], first))

    def str_replace(self, path: str, old: str, new: str) -> str:
        target = self._path(path)
        text = self._read(target)
        count = text.count(old) if old else 0
        if count != 1:
            raise ActionError(f"error: str_replace: old occurs {count} times in {path}; it must occur exactly once")
        target.write_text(text.replace(old, new))
        return f"edited {path}"

    def create(self, path: str, text: str) -> str:
        target = self._path(path)
        if target.is_dir():
            raise ActionError(f"error: create: {path} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return f"wrote {path}"

    def insert(self, path: str, line: int, text: str) -> str:
        target = self._path(path)
        lines = self._read(target).splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise ActionError(f"error: insert.line: expected 0..{len(lines)}, got {line}")
        lines.insert(line, text if text.endswith("\n") else text + "\n")
        target.write_text("".join(lines))
        return f"inserted {len(text.splitlines())} lines after line {line} of {path}"

    def submit(self) -> str:
        return "submitted"

    @staticmethod
    def _read(target: Path) -> str:
        if not target.is_file():
            raise ActionError(f"error: no such file: {target.name}")
        return target.read_text(errors="replace")

