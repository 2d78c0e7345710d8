"""`iquest data dedup INPUT... --output kept.jsonl`: exact and near-duplicate removal.

Exact duplicates (same content) first, then near duplicates among the rest (shingle-set Jaccard >=
--threshold, MinHash-LSH candidates verified exactly, see iquest_core.data.dedup). From each group the
first document in input order is kept. Signatures are computed per shard on the chosen engine; the LSH
index and the verification run in this process. --removed lists every dropped document with the path of
the one kept in its place.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from iquest_core.command_line import CommandParser
from iquest_core.jsonl import write_jsonl
from iquest_core.data import dedup
from iquest_core.data.engine import chunks, map_shards
from iquest_core.data.jobs import Summary, add_input_arguments, load_documents, run_main
from iquest_core.data.sources import Skipped


def signature_shard(shard: tuple[list[str], int, int]) -> np.ndarray:
    texts, seed, ngram = shard
    return dedup.minhash_signatures(texts, seed=seed, ngram=ngram)


def parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="iquest data dedup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_arguments(p)
    p.add_argument("--output", required=True, help="JSONL of the kept documents (path, content, repo)")
    p.add_argument("--removed", help="JSONL of the dropped documents (path, repo, kind, kept_path)")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold of near duplicates")
    p.add_argument("--ngram", type=int, default=5, help="tokens per shingle")
    p.add_argument("--seed", type=int, default=1, help="MinHash seed")
    p.add_argument("--shard-size", type=int, default=512, help="documents per shard")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("iquest data dedup", parser(), run, argv)


def run(args: argparse.Namespace) -> Summary:
    dedup.lsh_params(args.threshold)  # validates the threshold before any work
    skipped = Skipped()
    docs = load_documents(args.inputs, skipped)
    texts = [d.content for d in docs]
    exact = dedup.exact_duplicate_groups(texts)
    kept_of: dict[int, tuple[int, str]] = {i: (g[0], "exact") for g in exact for i in g[1:]}
    unique = [i for i in range(len(docs)) if i not in kept_of]
    shards = [(list(c), args.seed, args.ngram) for c in chunks([texts[i] for i in unique], args.shard_size)]
    results = map_shards(signature_shard, shards, engine=args.engine, workers=args.workers,
                         address=args.address, desc="dedup signatures")
    signatures = np.concatenate(results) if results else np.zeros((0, dedup.NUM_PERM), np.uint32)
    near = dedup.near_duplicate_groups_of_signatures([texts[i] for i in unique], signatures,
                                                     threshold=args.threshold, ngram=args.ngram, seed=args.seed)
    for group in near:
        for j in group[1:]:
            kept_of[unique[j]] = (unique[group[0]], "near")
    write_jsonl(args.output, ({"path": d.path, "content": d.content, "repo": d.repo}
                              for i, d in enumerate(docs) if i not in kept_of))
    if args.removed:
        write_jsonl(args.removed, ({"path": docs[i].path, "repo": docs[i].repo, "kind": kind,
                                    "kept_path": docs[k].path} for i, (k, kind) in sorted(kept_of.items())))
    exact_removed = sum(kind == "exact" for _, kind in kept_of.values())
    return Summary(len(docs), Counter({"exact_duplicate_groups": len(exact), "exact_duplicates_removed": exact_removed,
                                       "near_duplicate_groups": len(near),
                                       "near_duplicates_removed": len(kept_of) - exact_removed,
                                       "kept": len(docs) - len(kept_of)}), skipped.counts)
