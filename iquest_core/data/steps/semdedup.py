"""The `semdedup` step: embedding dedup (SemDeDup) of a corpus on disk, after `dedup` in the hierarchy
exact -> MinHash -> embedding.

    [[steps]]
    name = "dedup"          # exact, then MinHash near duplicates
    [[steps]]
    name = "semdedup"       # then embedding duplicates among what is left
    threshold = 0.995

Same result as `quality.semdedup.semantic_duplicate_groups` over the documents in input order when the
corpus has at most `fit_sample` documents (what the step embeds: `semdedup.embedding_text`, pooled over
windows by `windows.embed_documents(..., "mean")`), computed in stages:

1. collect, per shard (on the job's engine): the embedding of every document (all-MiniLM-L6-v2, or `model`)
   -> STATE/shard-N.embeddings.npy, 384 float32 = 1.5 kB per document, on disk.
2. reduce (global, in the driving process): k-means is fitted on a seeded sample of at most `fit_sample`
   documents (all of them when the corpus is smaller) with `clusters` centers (0: one per
   DOCS_PER_CLUSTER documents, at most one per SAMPLE_PER_CENTER sampled ones); every document is assigned
   its nearest center, shard by shard; then, cluster by cluster, every pair with cosine >= threshold is
   joined (`union_find.components`); each component keeps its first document in input order ->
   STATE/shard-N.semdrops.npy (index, kept number).
3. run (the filter pass), per shard: drops the listed documents; outcomes "kept", "dropped".

Memory of the reduce: the sample's embeddings (fit_sample x 1.5 kB: 30 MB at the default 20,000) and,
in k-means, its similarities to the centers (fit_sample x k float32, twice: up to 320 MB at the defaults,
where k <= 2,000; a shard's rows x k during the assignment); what grows with the corpus is 4 bytes of cluster label, 8 of
order and 8 of component root per document (20 B/doc: 200 MB for 10M documents); a cluster of m
documents holds its m x 1.5 kB of embeddings and a 1,024 x m block of similarities. Time: the embedding
(stage 1, ~tens of documents per second per core) dominates; the k-means++ start costs
k x (2 + ln k) x fit_sample x 384 multiply-adds, the assignment n x k x 384, the pair search m^2 x 384
per cluster. Past fit_sample x SAMPLE_PER_CENTER documents (200,000 by default) k stops growing, so
clusters grow past DOCS_PER_CLUSTER and the pair search as n^2 / k: raise fit_sample with the corpus. A
cluster is not bounded: m near-identical documents fall in one. The reduce runs in one process so that
its float arithmetic, and so its output, is the same on every engine and worker count.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from iquest_core.data.quality import semdedup, windows
from iquest_core.data.steps import Doc, ShardContext, register
from iquest_core.data.steps.near_dedup import save
from iquest_core.data.union_find import components

BATCH = 64
DIMENSIONS = 384  # of the default encoder; an empty shard's file has this width
SAMPLE_PER_CENTER = 10


@functools.lru_cache(maxsize=2)
def _encoder(model: str | None):
    from iquest_core.data.quality import encoder

    return encoder.load_encoder(model)


def _embeddings(state: Path, shard: int) -> np.ndarray:
    return np.load(state / f"shard-{shard:05d}.embeddings.npy", mmap_mode="r")


class _Rows:
    """Unit embedding rows of documents by number (input order over the job), read from the shard files."""

    def __init__(self, state: Path, num_shards: int) -> None:
        self.shards = [_embeddings(state, i) for i in range(num_shards)]
        self.first = np.concatenate([[0], np.cumsum([len(s) for s in self.shards])]).astype(np.int64)

    def __getitem__(self, numbers: np.ndarray) -> np.ndarray:
        """Rows of `numbers` (sorted ascending)."""
        shard_of = np.searchsorted(self.first, numbers, side="right") - 1
        parts = [np.asarray(self.shards[s][numbers[shard_of == s] - self.first[s]]) for s in np.unique(shard_of)]
        return semdedup.unit(np.concatenate(parts)) if parts else np.zeros((0, 0), np.float32)


@register
@dataclass
class SemDedup:
    name: ClassVar[str] = "semdedup"
    threshold: float = 0.995    # chosen on the held-out half of bench/quality_semdedup.py
    canonical: bool = True      # code files embedded with their bound names replaced by role
    clusters: int = 0           # k-means centers; 0: one per DOCS_PER_CLUSTER documents (module docstring)
    fit_sample: int = 20_000    # documents k-means is fitted on
    iterations: int = 20
    kmeans_seed: int = 0
    model: str | None = None    # a sentence-transformers folder; None: the wheel's all-MiniLM-L6-v2

    def __post_init__(self) -> None:
        semdedup.check_threshold(self.threshold)
        if self.model is not None and not any(Path(self.model, f).is_file() for f in ("modules.json", "config.json")):
            raise ValueError(f"model: {self.model} is not a sentence-transformers model folder (no modules.json)")
        for option in ("clusters", "fit_sample", "iterations"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if option == "clusters" else 1):
                raise ValueError(f"{option}: expected an int >= {0 if option == 'clusters' else 1}, got {value!r}")

    def collect(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        model = _encoder(self.model)
        vectors, batch = [], []
        for doc in docs:
            batch.append(doc)
            if len(batch) == BATCH:
                vectors.append(self._embed(model, batch))
                yield from batch
                batch = []
        if batch:
            vectors.append(self._embed(model, batch))
            yield from batch
        save(ctx.state_dir / f"{ctx.name}.embeddings.npy",
             np.concatenate(vectors) if vectors else np.zeros((0, DIMENSIONS), np.float32))

    def _embed(self, model, batch: list[Doc]) -> np.ndarray:
        texts = [semdedup.embedding_text(d["path"], d["content"], canonical=self.canonical) for d in batch]
        return windows.embed_documents(model, texts, "mean")

    def reduce(self, job) -> Counter[str]:
        rows = _Rows(job.state_dir, job.num_shards)
        total = int(rows.first[-1])
        if total > self.fit_sample:
            sample = np.sort(np.random.default_rng(self.kmeans_seed).choice(total, self.fit_sample, replace=False))
        else:
            sample = np.arange(total)
        root = np.arange(total)
        pairs = k = 0
        if total >= 2:
            k = self.clusters or max(1, min(total // semdedup.DOCS_PER_CLUSTER, len(sample) // SAMPLE_PER_CENTER))
            centers = semdedup.fit_centers(rows[sample], k, seed=self.kmeans_seed, iterations=self.iterations)
            labels = np.concatenate([semdedup.assign(semdedup.unit(np.asarray(s)), centers).astype(np.int32)
                                     for s in rows.shards if len(s)])
            order = np.argsort(labels, kind="stable")
            bounds = np.flatnonzero(np.diff(labels[order])) + 1
            for members in np.split(order, bounds):
                first, second = semdedup.cluster_pairs(rows[members], self.threshold)
                pairs += len(first)
                root[members] = members[components(len(members), first, second)]
        for shard in range(job.num_shards):
            lo, hi = int(rows.first[shard]), int(rows.first[shard + 1])
            dropped = np.flatnonzero(root[lo:hi] != np.arange(lo, hi))
            save(job.state_dir / f"shard-{shard:05d}.semdrops.npy",
                 np.column_stack([dropped, root[lo:hi][dropped]]).astype(np.int64))
        joined = root != np.arange(total)
        return Counter({"semdedup:clusters": k, "semdedup:similar_pairs": pairs,
                        "semdedup:duplicate_groups": len(np.unique(root[joined]))})

    def run(self, docs: Iterator[Doc], ctx: ShardContext) -> Iterator[Doc]:
        dropped = set(np.load(ctx.state_dir / f"{ctx.name}.semdrops.npy")[:, 0].tolist())
        for index, doc in enumerate(docs):
            if index in dropped:
                ctx.count("semdedup:dropped")
            else:
                ctx.count("semdedup:kept")
                yield doc
