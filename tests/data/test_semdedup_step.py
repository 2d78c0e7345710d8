"""The dedup hierarchy as pipeline steps (exact -> MinHash -> embedding): each step removes what it should on
real functions; the staged k-means / pair search equals the in-memory SemDeDup; outputs are the same on 1
and 2 workers."""

import ast
import hashlib
import json

import numpy as np
import pytest

from iquest_core.data.pipeline import Pipeline, run_pipeline
from iquest_core.data.pipeline import ReduceContext
from iquest_core.data.quality import semdedup, windows
from iquest_core.data.steps import ShardContext, make_step
from iquest_core.data.steps.near_dedup import save
from tests.data.conftest import STDLIB
from tests.data.test_pipeline import files_of, read_output

AREA = ('def box_area(width, height, depth):\n    """Surface of a closed box."""\n    front = width * height\n'
        '    side = height * depth\n    top = width * depth\n    return 2 * (front + side + top)\n')
AREA_RENAMED = ('def surface(a, b, c):\n    """Surface of a closed box."""\n    f = a * b\n'
                '    s = b * c\n    t = a * c\n    return 2 * (f + s + t)\n')


def stdlib_functions(module: str) -> list[str]:
    source = (STDLIB / module).read_text(encoding="utf-8")
    lines = source.splitlines()
    return ["\n".join(lines[n.lineno - 1:n.end_lineno]) + "\n" for n in ast.parse(source).body
            if isinstance(n, ast.FunctionDef)]


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    """Two JSONL files: the functions of colorsys and textwrap's top level (similar shapes: rgb_to_hsv /
    hsv_to_rgb ...) and AREA, with an exact copy, a near copy (one comment line) and a renamed clone."""
    originals = stdlib_functions("colorsys.py") + stdlib_functions("textwrap.py") + [AREA]
    docs = [{"path": f"f{i}.py", "content": text, "repo": "cpython"} for i, text in enumerate(originals)]
    near = originals[2].replace("\n", "\n    # converted\n", 1)
    planted = [{"path": "exact.py", "content": originals[1], "repo": "fork"},
               {"path": "near.py", "content": near, "repo": "fork"},
               {"path": "renamed.py", "content": AREA_RENAMED, "repo": "fork"}]
    root = tmp_path_factory.mktemp("functions")
    lines = [json.dumps(d) + "\n" for d in docs + planted]
    (root / "a.jsonl").write_text("".join(lines[::2]))
    (root / "b.jsonl").write_text("".join(lines[1::2]))
    return [str(root / "a.jsonl"), str(root / "b.jsonl")], len(docs)


def run(inputs, output, steps, **options):
    pipeline = Pipeline(inputs=inputs, output=str(output), steps=[make_step(s) for s in steps],
                        output_format="jsonl", shard_bytes=2_000)
    return run_pipeline(pipeline, progress=False, **options)


def test_each_step_of_the_hierarchy_removes_its_own_duplicates(functions, tmp_path):
    inputs, originals = functions
    steps = [{"name": "dedup"}, {"name": "semdedup"}]
    summary = run(inputs, tmp_path / "out", steps, workers=1)
    kept = {d["path"] for d in read_output(tmp_path / "out")}
    assert kept == {f"f{i}.py" for i in range(originals)}  # every distinct function kept, every planted one gone
    assert summary.outcomes["dedup:dropped:exact"] == summary.outcomes["dedup:dropped:near"] == 1
    assert summary.outcomes["semdedup:dropped"] == 1 and summary.outcomes["semdedup:kept"] == originals
    # the renamed clone is the embedding step's only because of the canonical text: raw, it is kept
    raw = run(inputs, tmp_path / "raw", [{"name": "dedup"}, {"name": "semdedup", "canonical": False}], workers=1)
    assert raw.outcomes["semdedup:dropped"] == 0
    assert "renamed.py" in {d["path"] for d in read_output(tmp_path / "raw")}


def fake_embeddings(model, texts, pooling):
    """A cheap stand-in for the encoder: unit vectors from the text's hash, equal for equal texts."""
    rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")).normal(size=8)
            for t in texts]
    return semdedup.unit(np.array(rows))


def test_outputs_are_the_same_on_one_and_two_workers(functions, tmp_path, monkeypatch):
    monkeypatch.setattr(windows, "embed_documents", fake_embeddings)  # forked workers inherit it
    inputs, _ = functions
    steps = [{"name": "semdedup", "canonical": True, "threshold": 0.99}]
    one = run(inputs, tmp_path / "w1", steps, workers=1)
    two = run(inputs, tmp_path / "w2", steps, workers=2)
    assert files_of(tmp_path / "w1") == files_of(tmp_path / "w2") and len(files_of(tmp_path / "w1")) > 2
    assert one.outcomes == two.outcomes and one.outcomes["semdedup:dropped"] == 2  # exact copy, renamed clone


def planted_embeddings(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = semdedup.unit(rng.normal(size=(n, d)))
    x[n - 40:] = semdedup.unit(x[:40] + 0.03 * rng.normal(size=(40, d)))  # 40 close copies
    return x


def staged(x, tmp_path, shards=3, **options):
    """The semdedup step's reduce over x written as `shards` shards' embedding files; {removed: kept}."""
    step = make_step({"name": "semdedup", **options})
    for s, part in enumerate(np.array_split(x, shards)):
        save(tmp_path / f"shard-{s:05d}.embeddings.npy", part.astype(np.float32))
    counts = step.reduce(ReduceContext(tmp_path, shards, {}))
    removed, first = {}, 0
    for s, part in enumerate(np.array_split(x, shards)):
        for index, kept in np.load(tmp_path / f"shard-{s:05d}.semdrops.npy").tolist():
            removed[first + index] = kept
        first += len(part)
    return removed, counts


def test_staged_semdedup_equals_the_in_memory_one(tmp_path):
    x = planted_embeddings()
    removed, counts = staged(x, tmp_path, threshold=0.95, kmeans_seed=3)
    groups = semdedup.semantic_duplicate_groups(x, threshold=0.95, seed=3)
    assert removed == {j: g[0] for g in groups for j in g[1:]}
    assert len(removed) >= 35 and set(removed) <= set(range(560, 600)) and counts["semdedup:clusters"] == 6


def test_a_sampled_fit_still_finds_the_planted_copies(tmp_path):
    removed, counts = staged(planted_embeddings(), tmp_path, threshold=0.95, fit_sample=200, clusters=2)
    assert counts["semdedup:clusters"] == 2
    assert {j: k for j, k in removed.items()} == {j: j - 560 for j in removed} and len(removed) >= 35


def test_bad_options_are_named(tmp_path):
    for table, name in (({"threshold": 1.5}, "threshold"), ({"fit_sample": 0}, "fit_sample"),
                        ({"clusters": -1}, "clusters"), ({"iterations": True}, "iterations"),
                        ({"model": str(tmp_path / "missing")}, "model")):
        with pytest.raises(ValueError, match=f"^{name}:"):
            make_step({"name": "semdedup", **table})


def test_empty_and_single_document_corpora(tmp_path):
    removed, counts = staged(np.zeros((1, 4), np.float32), tmp_path, shards=1)
    assert removed == {} and counts["semdedup:duplicate_groups"] == 0
    ctx = ShardContext(0, "shard-00000", state_dir=tmp_path)
    assert [d["path"] for d in make_step({"name": "semdedup"}).run(iter([{"path": "a", "content": "x"}]), ctx)] == ["a"]


def test_data_semdedup_command(functions, tmp_path, capsys):
    from iquest_core.cli import main as iquest

    inputs, originals = functions
    assert iquest(["data", "semdedup", *inputs, "--output", str(tmp_path / "kept.jsonl")]) == 0
    kept = [json.loads(line)["path"] for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert set(kept) - {"near.py"} == {f"f{i}.py" for i in range(originals)}  # near.py: cosine ~0.99, threshold-close
    assert iquest(["data", "semdedup", *inputs, "--output", str(tmp_path / "x.jsonl"), "--threshold", "2"]) == 2
    assert "threshold" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()
