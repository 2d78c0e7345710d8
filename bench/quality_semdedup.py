"""Embedding dedup on real functions with planted clones, against MinHash, in one table.

    python bench/quality_semdedup.py [ORIGINALS] [CLONES]     (pool, originals and embeddings cached outside the repo)

Originals: ORIGINALS distinct functions of the stdlib and installed packages (bench/semdedup_clones.py),
half drawn at random, half from groups of short functions (<= 8 lines) of one shape (equal after
`canonical_identifiers`: getters, setters, one-line wrappers), the hardest case for a false duplicate;
no two originals are equal after `canonical_locals` (that would be one function with other local names, a
clone, not two functions). They are split in two halves at random: a held-out half, on which each
embedding method's cosine threshold is chosen (the lowest of THRESHOLDS with at most TARGET false
duplicates), and a test half, on which every figure is measured. Each half gets CLONES renamed clones
(name, parameters, locals renamed) and CLONES edited clones (renamed, plus two adjacent statements
swapped and/or a literal changed) of distinct originals.

Recall: clones in the same group as their original. False-duplicate rate: originals removed / originals
(the original of a group comes first in input order and is kept, so an original is removed only as a
duplicate of another, distinct original).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from semdedup_clones import edited_clone, function_pool, renamed_clone  # noqa: E402

from iquest_core.data import dedup  # noqa: E402
from iquest_core.data.quality import encoder  # noqa: E402
from iquest_core.data.quality.canonical import canonical_identifiers, canonical_locals  # noqa: E402
from iquest_core.data.quality.semdedup import hierarchical_dedup, semantic_duplicate_groups  # noqa: E402
from iquest_core.data.quality.windows import embed_documents  # noqa: E402

THRESHOLDS = (0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985, 0.99, 0.9925, 0.995, 0.9975)
TARGET = 0.0075
PIPELINE = "hierarchy: exact -> MinHash raw -> embedding canonical (dedup + semdedup steps)"
SHORT_LINES = 8
POOLING = "mean"  # as the semdedup step embeds (windows.embed_documents)


def cache() -> Path:
    folder = encoder.cache_dir() / "quality-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cached_json(name: str, compute):
    path = cache() / name
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value))
    return value


def pick_originals(pool: list[str], n: int, rng: random.Random) -> tuple[list[str], int]:
    """(n originals, how many drawn functions were left out as equal to another after canonical_locals)."""
    shapes = defaultdict(list)
    for text in pool:
        if text.count("\n") <= SHORT_LINES:
            shapes[canonical_identifiers(text, "python")].append(text)
    groups = sorted((g for g in shapes.values() if len(g) >= 2), key=lambda g: g[0])
    rng.shuffle(groups)
    chosen, seen, clones_left_out = [], set(), 0

    def add(text: str) -> None:
        nonlocal clones_left_out
        key = canonical_locals(text, "python")
        if key in seen:
            clones_left_out += 1
        else:
            seen.add(key)
            chosen.append(text)

    for group in groups:
        if len(chosen) >= n // 2:
            break
        for text in rng.sample(group, min(3, len(group))):
            add(text)
    for text in rng.sample(pool, 3 * n):
        if len(chosen) >= n:
            break
        if text not in chosen:
            add(text)
    return chosen[:n], clones_left_out


def plant(originals: list[str], n_clones: int, rng: random.Random) -> tuple[list[str], dict[int, int], dict[int, str]]:
    """(originals + clones, clone index -> original index, clone index -> kind)."""
    texts, clone_of, kind = list(originals), {}, {}
    order = rng.sample(range(len(originals)), len(originals))
    for name, make in (("renamed", renamed_clone), ("edited", edited_clone)):
        made = 0
        while made < n_clones and order:
            i = order.pop()
            clone = make(originals[i], rng)
            if clone is not None and clone != originals[i]:
                clone_of[len(texts)], kind[len(texts)] = i, name
                texts.append(clone)
                made += 1
    return texts, clone_of, kind


def embeddings(texts: list[str], name: str, model) -> np.ndarray:
    key = hashlib.sha256("\0".join([POOLING, *texts]).encode()).hexdigest()[:16]
    path = cache() / f"semdedup-{name}-{key}.npy"
    if not path.is_file():
        np.save(path, embed_documents(model(), texts, POOLING))
    return np.load(path)


def removed_of_groups(groups: list[list[int]]) -> dict[int, int]:
    return {j: g[0] for g in groups for j in g[1:]}


def minhash(keys: list[str]) -> dict[int, int]:
    """exact then MinHash (J >= 0.8, 5-token shingles) over keys, as the pipeline's dedup step."""
    exact = dedup.exact_duplicate_groups(keys)
    removed = removed_of_groups(exact)
    alive = [i for i in range(len(keys)) if i not in removed]
    for group in dedup.near_duplicate_groups([keys[i] for i in alive], threshold=0.8):
        for j in group[1:]:
            removed[alive[j]] = alive[group[0]]
    return removed


def score(removed: dict[int, int], clone_of: dict[int, int], kind: dict[int, str], n_originals: int) -> dict:
    def root(i: int) -> int:
        while i in removed:
            i = removed[i]
        return i

    found = {c: root(c) == root(o) and c in removed for c, o in clone_of.items()}
    recall = {k: np.mean([found[c] for c in clone_of if kind[c] == k]) for k in ("renamed", "edited")}
    return {**recall, "all": float(np.mean(list(found.values()))),
            "false": sum(1 for i in removed if i < n_originals) / n_originals}


def main() -> None:
    n_originals = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    n_clones = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    began = time.time()
    rng = random.Random(0)
    pool = cached_json("function-pool.json", function_pool)
    originals, left_out = cached_json(f"semdedup-originals-{n_originals}.json",
                                      lambda: pick_originals(pool, n_originals, rng))
    rng = random.Random(1)
    rng.shuffle(originals)
    halves = {"held-out": originals[:n_originals // 2], "test": originals[n_originals // 2:]}
    loaded = []

    def model():
        if not loaded:
            loaded.append(encoder.load_encoder())
        return loaded[0]

    short = sum(t.count("\n") <= SHORT_LINES for t in originals)
    print(f"pool {len(pool)} functions; {n_originals} originals ({short} of <= {SHORT_LINES} lines; {left_out} drawn "
          f"functions left out as equal to another after canonical_locals); {n_clones} renamed + {n_clones} edited "
          f"clones per half; load {os.getloadavg()[0]:.1f}", flush=True)
    results, chosen = {}, {}
    for half, part in halves.items():
        texts, clone_of, kind = plant(part, n_clones, random.Random(half))
        canonical = [canonical_locals(t, "python") for t in texts]
        raw_vectors = embeddings(texts, "raw", model)
        canonical_vectors = embeddings(canonical, "canonical", model)
        row = {t: i for i, t in enumerate(texts)}

        def embed(batch, vectors=canonical_vectors):
            return vectors[[row[t] for t in batch]]

        def measure(name, removed_at):
            if name not in chosen:  # held-out half: choose the threshold
                scores = {t: score(removed_at(t), clone_of, kind, len(part)) for t in THRESHOLDS}
                chosen[name] = min((t for t in THRESHOLDS if scores[t]["false"] <= TARGET), default=THRESHOLDS[-1])
            found = score(removed_at(chosen[name]), clone_of, kind, len(part))
            results.setdefault(half, {})[name] = (chosen[name], found)

        results.setdefault(half, {})["MinHash raw (the dedup step)"] = (None, score(minhash(texts), clone_of, kind,
                                                                                     len(part)))
        results[half]["MinHash on canonical_locals text"] = (None, score(minhash(canonical), clone_of, kind, len(part)))
        measure("embedding raw, alone",
                lambda t: removed_of_groups(semantic_duplicate_groups(raw_vectors, threshold=t)))
        measure("embedding canonical_locals, alone",
                lambda t: removed_of_groups(semantic_duplicate_groups(canonical_vectors, threshold=t)))
        measure(PIPELINE, lambda t: {i: k for i, (k, _) in hierarchical_dedup(texts, embed, cosine=t).items()})
        stages = Counter(stage for i, (_, stage) in hierarchical_dedup(texts, embed, cosine=chosen[PIPELINE]).items()
                         if i < len(part))
        print(f"{half}: originals removed by the pipeline hierarchy, by stage: {dict(stages)}", flush=True)
        measure("hierarchy on canonical text: exact -> MinHash -> embedding",
                lambda t: {i: k for i, (k, _) in hierarchical_dedup(
                    texts, embed, cosine=t, preprocess=lambda s: canonical_locals(s, "python")).items()})
        unit = canonical_vectors
        cos = {k: np.quantile([unit[c] @ unit[o] for c, o in clone_of.items() if kind[c] == k], [0.1, 0.5]).round(3)
               for k in ("renamed", "edited")}
        print(f"{half}: clone-to-original cosine of canonical embeddings, 10/50%: {cos}", flush=True)
    print(f"\n{'method (test half; threshold chosen on the held-out half)':<88}{'cos >=':>7}{'renamed':>9}"
          f"{'edited':>8}{'all':>7}{'false':>8}")
    for name, (threshold, s) in results["test"].items():
        held = results["held-out"][name][1]["false"]
        print(f"{name:<88}{threshold or '-':>7}{s['renamed']:>9.3f}{s['edited']:>8.3f}{s['all']:>7.3f}"
              f"{s['false']:>8.2%}  (held-out false {held:.2%})")
    print(f"{time.time() - began:.0f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
