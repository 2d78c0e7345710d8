"""The package's import graph keeps the layering of DESIGN.md: every import of an iquest_core module goes
down to a lower floor or stays inside its own package, no modules import each other in a circle, and no
module is over 400 lines. Imports inside functions count too (a lazy import only hides a circle).

    python tests/test_import_graph.py     # prints the graph between packages, floor by floor
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "iquest_core"
MAX_LINES = 400

# Floors, lowest first: a module may import modules of its own package or of a lower floor. Keys are
# dotted paths below iquest_core; the longest matching key gives a module's floor.
FLOORS = {
    "_C": 0, "atomic_io": 0,
    "": 1, "jsonl": 1, "command_line": 1,
    "serve.client": 1,  # the one client for any endpoint: httpx only, used by data, eval, synth
    "ops": 2,
    "data": 3, "sandbox": 3, "scaling": 3,
    "model": 4,
    "parallel": 5, "reliability": 5, "serve": 5,
    "train": 6, "eval": 6,
    "rl": 7, "synth": 7,
    "swe": 8,
    "jobs": 9,   # the long jobs (Code-Flow pipeline, sweeps): they use the commands' modules, never cli.py
    "cli": 10,   # names the commands' modules as strings; nothing imports it
}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name below iquest_core ("" for the package itself) -> file, for every .py file."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the iquest_core modules it imports anywhere in its file (`from pkg import name` is an
    import of pkg.name when that is a module, else of pkg, whose __init__ runs)."""
    known = set(modules) | {"_C"}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(["iquest_core", *here[:len(here) - node.level + 1], *filter(None, [base])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}".removeprefix("iquest_core.") in known
                           else base for alias in node.names]
            else:
                continue
            for target in targets:
                dotted = target.removeprefix("iquest_core").removeprefix(".")
                if (target == "iquest_core" or target.startswith("iquest_core.")) and dotted in known \
                        and dotted != name:
                    graph[name].add(dotted)
    return graph


def floor(module: str) -> int:
    keys = [k for k in FLOORS if k == "" or module == k or module.startswith(k + ".")]
    return FLOORS[max(keys, key=len)]


def package_of(module: str) -> str:
    return module.split(".")[0]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b (floor x -> y)' for every import of another package's module at the same or a higher floor."""
    return sorted(f"{a} -> {b} (floor {floor(a)} -> {floor(b)})" for a, targets in graph.items() for b in targets
                  if package_of(a) != package_of(b) and floor(b) >= floor(a))


GRAPH = imports(module_files())


def test_every_module_has_a_floor():
    assert not [m for m in module_files() if m and package_of(m) not in FLOORS]


def test_imports_only_go_down_a_floor():
    assert upward_imports(GRAPH) == []


def test_no_import_circles():
    assert circles(GRAPH) == []


def test_no_module_over_400_lines():
    long = {name: n for name, path in module_files().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_check_sees_lazy_imports_circles_and_upward_imports(tmp_path):
    """The control: a planted lazy upward import and a planted circle are found."""
    root = tmp_path / "iquest_core"
    for rel, text in {"__init__.py": "", "data/__init__.py": "", "train/__init__.py": "",
                      "data/a.py": "def f():\n    from iquest_core.train import b\n",
                      "train/b.py": "from iquest_core.data import a\n",
                      "train/c.py": "from . import b\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    graph = imports(module_files(root))
    assert graph == {"data.a": {"train.b"}, "train.b": {"data.a"}, "train.c": {"train.b"}}
    assert circles(graph) == [["data.a", "train.b"]]
    assert upward_imports(graph) == ["data.a -> train.b (floor 3 -> 6)"]


if __name__ == "__main__":
    edges: dict[str, set[str]] = defaultdict(set)
    for a, targets in GRAPH.items():
        edges[package_of(a) or "iquest_core"] |= {package_of(b) or "iquest_core" for b in targets
                                                  if package_of(b) != package_of(a)}
    for package in sorted(edges, key=lambda p: (floor(p if p != "iquest_core" else ""), p)):
        below = ", ".join(sorted(edges[package] - {package}))
        print(f"floor {floor(package if package != 'iquest_core' else '')}  {package:12s} -> {below}")
    sys.exit(0)
