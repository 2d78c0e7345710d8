"""Our staged MinHash dedup beside datatrove's, on the same corpus and cores, one run each (not a test).

    python bench/data_datatrove.py --corpus /work/corpora/c025s --work /work/corpora/runs/dt025 --workers 2

Both read the corpus's part-*.jsonl, find exact + near duplicates with MinHash-LSH (128 hashes: 21 bands of
6 for ours; 21 buckets of 6 hashes for datatrove, 5-gram shingles both; datatrove shingles its normalised
words, ours identifier runs, and ours verifies candidates by exact Jaccard >= 0.8) and write the kept
documents as .jsonl. Datatrove runs its four stages (signatures, buckets, cluster, filter) with
LocalPipelineExecutor(tasks = part files, workers = --workers); ours `iquest data run` with the `dedup`
step. Each is measured by bench/data_scale.measure (wall, CPU, peak RSS / PSS of the process tree).
Agreement: duplicate clusters as sets of document pairs (every two members of a cluster; a document is
(path, repo)), over the documents both read (datatrove skips empty ones); the share of our pairs
datatrove finds and of its pairs we find, and how many documents each drops. Prints one JSON line.
Datatrove has no code-syntax filter and its n-gram decontamination needs lighteval's task data, so the
comparison is the dedup pipeline alone.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from data_scale import measure  # noqa: E402

import numpy as np  # noqa: E402

from iquest_core.data import dedup  # noqa: E402

OURS = """inputs = {inputs}
output = "out"
output_format = "jsonl"
[[steps]]
name = "dedup"
removed = "removed.jsonl"
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

corpus, work, tasks, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = MinhashConfig(n_grams=5, num_buckets=21, hashes_per_bucket=6, seed=1)
read = lambda: JsonlReader(corpus, glob_pattern="part-*.jsonl", text_key="content", id_key="path")
run = lambda pipeline, n, name: LocalPipelineExecutor(pipeline, tasks=n, workers=min(workers, n),
                                                      logging_dir=f"{work}/logs/{name}").run()
run([read(), MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)], tasks, "sigs")
run([MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config)],
    config.num_buckets, "buckets")
run([MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove", config=config,
                         save_cluster_id=True)], 1, "cluster")
run([read(), MinhashDedupFilter(input_folder=f"{work}/remove", load_cluster_ids=True,
                                exclusion_writer=JsonlWriter(f"{work}/removed", compression=None)),
     JsonlWriter(f"{work}/out", compression=None)], tasks, "filter")
"""


def pairs(clusters: dict[object, set]) -> set[frozenset]:
    return {frozenset(p) for members in clusters.values() for p in itertools.combinations(sorted(members), 2)}


def our_clusters(work: Path) -> dict[object, set]:
    clusters: dict[object, set] = {}
    for line in (work / "removed.jsonl").read_text().splitlines():
        r = json.loads(line)
        kept = (r["kept_path"], r["kept_repo"])
        clusters.setdefault(kept, {kept}).add((r["path"], r["repo"]))
    return clusters


def datatrove_clusters(work: Path) -> tuple[dict[object, set], set]:
    """Datatrove's clusters of >= 2 documents, and every document it read (it skips empty ones)."""
    clusters: dict[object, set] = {}
    seen = set()
    for path in sorted((work / "out").glob("*.jsonl")) + sorted((work / "removed").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            key = (doc["id"], doc["metadata"].get("repo"))
            seen.add(key)
            cluster = doc["metadata"].get("minhash_cluster_id", -1)
            if cluster != -1:
                clusters.setdefault(cluster, set()).add(key)
    return {k: v for k, v in clusters.items() if len(v) > 1}, seen


def datatrove_edges(corpus: Path, work: Path) -> tuple[list[tuple[object, object]], dict[object, str]]:
    """Datatrove's candidate edges (its buckets/*.dups: two documents with equal band hashes, each joined to
    the previous one of its bucket, unverified) as document keys, and the text of every document in one.
    Datatrove numbers documents per task (= part file, in order) as its reader yields them: empty ones are
    skipped."""
    raw = np.concatenate([np.fromfile(p, dtype="<u4").reshape(-1, 4) for p in sorted((work / "buckets").glob("*.dups"))])
    wanted = {(int(f), int(d)) for f, d in np.concatenate([raw[:, :2], raw[:, 2:]]).tolist()}
    key_of, text_of = {}, {}
    for rank, part in enumerate(sorted(corpus.glob("part-*.jsonl"))):
        with open(part, encoding="utf-8") as lines:
            records = (json.loads(line) for line in lines)
            for index, record in enumerate(r for r in records if r["content"]):
                if (rank, index) in wanted:
                    key = (record["path"], record.get("repo"))
                    key_of[rank, index], text_of[key] = key, record["content"]
    edges = [(key_of[a, b], key_of[c, d]) for a, b, c, d in raw.tolist()]
    return edges, text_of


def verified_clusters(edges: list[tuple[object, object]], text_of: dict[object, str], threshold: float) -> dict[object, set]:
    """Components of the edges whose shingle sets (ours) have Jaccard >= threshold."""
    shingles = functools.lru_cache(maxsize=4096)(lambda key: dedup.shingles(text_of[key]))
    parent: dict[object, object] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb and dedup.jaccard(shingles(a), shingles(b)) >= threshold:
            parent[max(ra, rb)] = min(ra, rb)
    clusters: dict[object, set] = {}
    for x in list(parent):
        clusters.setdefault(find(x), set()).add(x)
    return {k: v for k, v in clusters.items() if len(v) > 1}


def compare(ours_clusters: dict[object, set], theirs_clusters: dict[object, set]) -> dict:
    ours, theirs = pairs(ours_clusters), pairs(theirs_clusters)
    return {"our_pairs": len(ours), "datatrove_pairs": len(theirs),
            "share_of_ours_datatrove_finds": round(len(ours & theirs) / max(len(ours), 1), 4),
            "share_of_datatrove_we_find": round(len(ours & theirs) / max(len(theirs), 1), 4),
            "datatrove_dropped": sum(len(v) - 1 for v in theirs_clusters.values()),
            "largest_cluster_datatrove": max(map(len, theirs_clusters.values()), default=0)}


def agreement(corpus: Path, ours_dir: Path, theirs_dir: Path) -> dict:
    """Pairs of documents sharing a cluster, over the documents both read: ours against datatrove's clusters,
    and against the clusters of datatrove's candidate edges verified like ours (Jaccard >= 0.8)."""
    theirs_clusters, seen = datatrove_clusters(theirs_dir)
    ours_clusters = {k: v & seen for k, v in our_clusters(ours_dir).items()}
    edges, text_of = datatrove_edges(corpus, theirs_dir)
    verified = verified_clusters(edges, text_of, 0.8)
    return {"our_dropped": sum(len(v) - 1 for v in ours_clusters.values()),
            "largest_cluster_ours": max(map(len, ours_clusters.values()), default=0),
            "datatrove_candidate_edges": len(edges), "as_published": compare(ours_clusters, theirs_clusters),
            "datatrove_candidates_verified": compare(ours_clusters, verified)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--agreement-only", action="store_true", help="only compare the outputs already in --work")
    args = parser.parse_args()
    if args.agreement_only:
        print(json.dumps(agreement(args.corpus, args.work / "ours", args.work / "datatrove")))
        return
    parts = sorted(str(p) for p in args.corpus.glob("part-*.jsonl"))
    mb = sum(Path(p).stat().st_size for p in parts) / 1e6
    ours_dir, theirs_dir = args.work / "ours", args.work / "datatrove"
    ours_dir.mkdir(parents=True)
    theirs_dir.mkdir(parents=True)
    (ours_dir / "pipeline.toml").write_text(OURS.format(inputs=json.dumps(parts)))
    results = {"ours": measure([sys.executable, "-m", "iquest_core.cli", "data", "run", "pipeline.toml",
                                "--workers", str(args.workers), "--no-progress"], ours_dir),
               "datatrove": measure([sys.executable, "-c", DATATROVE, str(args.corpus), str(theirs_dir),
                                     str(len(parts)), str(args.workers)], theirs_dir)}
    for result in results.values():
        result["mb_per_s_per_worker"] = round(mb / result["wall_s"] / args.workers, 2)
        result["mb_per_cpu_s"] = round(mb / result["cpu_s"], 2)
    print(json.dumps({"input_mb": round(mb), "workers": args.workers, **results,
                      **agreement(args.corpus, ours_dir, theirs_dir)}))


if __name__ == "__main__":
    main()
