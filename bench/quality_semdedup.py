"""Embedding dedup on real functions with planted clones whose identifiers were renamed.

    python bench/quality_semdedup.py [FUNCTIONS] [CLONES]     (embeddings cached outside the repo)

Functions: standard-library functions and methods of 6-40 lines (dedented) (sorted by file, distinct texts). Clones: a random
sample of them with the function's name, its parameters and every local it assigns renamed consistently
(no other change). Recall: planted clones removed with their original; false duplicates: documents
removed that are not planted clones, over all documents. MinHash alone (Jaccard >= 0.8 on 5-token
shingles) against exact -> MinHash -> SemDeDup (cosine >= t within k-means clusters) at several t.
"""

from __future__ import annotations

import ast
import os
import random
import re
import sys
import sysconfig
import textwrap
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from quality_corpus import cached_embeddings  # noqa: E402

from iquest_core.data import dedup  # noqa: E402
from iquest_core.data.quality.canonical import canonical_identifiers  # noqa: E402
from iquest_core.data.quality.semdedup import hierarchical_dedup, semantic_duplicate_groups  # noqa: E402

NAMES = ("alpha", "beta", "gamma", "delta", "item", "value", "node", "entry", "result", "target", "source",
         "left", "right", "first", "second", "count", "total", "buf", "data", "obj", "thing", "elem", "acc")


def functions(limit: int) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    seen, out = set(), []
    for path in sorted(root.glob("*.py")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                source = path.read_text(encoding="utf-8")
                tree = ast.parse(source)
                lines = source.splitlines()
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and 6 <= node.end_lineno - node.lineno + 1 <= 40:
                text = textwrap.dedent("\n".join(lines[node.lineno - 1:node.end_lineno]))
                if text and text not in seen and _parses(text):
                    seen.add(text)
                    out.append(text)
    step = max(len(out) // limit, 1)
    return out[::step][:limit]


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:  # a docstring indented less than its method defeats dedent
        return False
    return True


def renamed(text: str, rng: random.Random) -> str:
    tree = ast.parse(text).body[0]
    names = {tree.name} | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)} | {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    names -= {"self", "cls"}
    fresh = rng.sample(NAMES, len(NAMES))
    mapping = {name: f"{fresh[i % len(fresh)]}{i // len(fresh) or ''}_{rng.randrange(100)}" for i, name in
               enumerate(sorted(names))}
    return re.sub(r"(?<![.\w])[A-Za-z_]\w*", lambda m: mapping.get(m.group(), m.group()), text)


def main() -> None:
    n_functions = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    n_clones = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    rng = random.Random(0)
    originals = functions(n_functions)
    picked = rng.sample(range(len(originals)), n_clones)
    texts = originals + [renamed(originals[i], rng) for i in picked]
    clone_of = {len(originals) + k: i for k, i in enumerate(picked)}
    docs = [{"id": f"f{i}", "text": t} for i, t in enumerate(texts)]
    vectors = cached_embeddings(docs, f"functions-{len(originals)}-{n_clones}")
    row = {t: i for i, t in enumerate(texts)}

    def embed(batch):
        return vectors[[row[t] for t in batch]]

    def score(removed: dict[int, int]) -> tuple[float, float]:
        found = sum(1 for c, o in clone_of.items() if removed.get(c) == o or removed.get(o) == c)
        false = sum(1 for i in removed if i not in clone_of and i not in clone_of.values())
        return found / len(clone_of), false / len(texts)

    print(f"{len(originals)} stdlib functions + {n_clones} renamed clones; load {os.getloadavg()[0]:.1f}")
    print(f"{'method':<44}{'clone recall':>14}{'false dup rate':>16}")

    def show(label: str, removed: dict[int, int]) -> None:
        recall, false = score(removed)
        print(f"{label:<44}{recall:>14.3f}{false:>16.4f}")

    near = dedup.near_duplicate_groups(texts, threshold=0.8)
    show("exact + MinHash (J >= 0.8)", {j: g[0] for g in near for j in g[1:]})
    for cosine in (0.90, 0.93, 0.95, 0.97):
        removed = {i: kept for i, (kept, _) in hierarchical_dedup(texts, embed, cosine=cosine).items()}
        show(f"+ SemDeDup (cos >= {cosine})", removed)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    clone_cos = np.array([unit[c] @ unit[o] for c, o in clone_of.items()])
    print("cosine of each clone to its original, quantiles 10/50/90%:",
          np.quantile(clone_cos, [0.1, 0.5, 0.9]).round(3).tolist())
    for cosine in (0.90, 0.95, 0.98):  # every pair compared (no k-means): the embedding's own ceiling
        groups = semantic_duplicate_groups(vectors, threshold=cosine, clusters=1)
        show(f"SemDeDup alone, all pairs (cos >= {cosine})", {j: g[0] for g in groups for j in g[1:]})
    canonical = [canonical_identifiers(t, "python") for t in texts]
    near = dedup.near_duplicate_groups(canonical, threshold=0.8)
    show("canonical identifiers, exact + MinHash", {j: g[0] for g in near for j in g[1:]})
    exact = dedup.exact_duplicate_groups(canonical)
    show("canonical identifiers, exact only", {j: g[0] for g in exact for j in g[1:]})


if __name__ == "__main__":
    main()
