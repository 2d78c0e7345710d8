"""The pipeline driver: staged on-disk dedup equals the in-memory dedup, outputs are byte-identical on 1 and
2 local workers and on Ray, a SIGKILLed job resumes redoing only unfinished shards, a foreign output
directory is refused, and `iquest data run` reads a TOML file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iquest_core.cli import main as iquest
from iquest_core.data import dedup
from iquest_core.data.pipeline import Pipeline, load_pipeline, run_pipeline
from iquest_core.data.steps import make_step
from iquest_core.data.steps.io import plan_shards, read_shard
from iquest_core.data.steps import ShardContext
from iquest_core.data.steps import dedup_cluster, near_dedup
from iquest_core.data.shards import TokenShards
from iquest_core.data.steps.code import syntax_verdict
from iquest_core.data.steps.tokenize import encode_document
from iquest_core.data.tokenizer import load_tokenizer
from tests.data.conftest import FILES, STDLIB

REPO = Path(__file__).resolve().parents[2]


def edit(text, k):
    """text with k scattered words renamed: a near duplicate for small k."""
    words = text.split(" ")
    for i in range(1, k + 1):
        at = (i * 7919) % len(words)
        words[at] = f"renamed{i}"
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two JSONL files (several shards each) of real stdlib modules with planted exact and near duplicates,
    one bad line and one file with a truncated gzip tail."""
    root = tmp_path_factory.mktemp("corpus")
    modules = sorted(STDLIB.glob("[a-c]*.py"))[:40]
    records = [{"path": p.name, "content": p.read_text(encoding="utf-8"), "repo": "cpython"} for p in modules]
    planted = [{"path": f"copy_{r['path']}", "content": r["content"], "repo": "fork"} for r in records[:6]]
    shares = (0.002, 0.01, 0.015, 0.018, 0.02, 0.022, 0.025, 0.03)  # Jaccard from about 0.98 down to 0.7
    planted += [{"path": f"edit_{r['path']}", "content": edit(r["content"], int(share * r["content"].count(" "))),
                 "repo": "fork"} for r, share in zip(records[6:14], shares)]
    planted += [{"path": f"far_{r['path']}", "content": edit(r["content"], 400), "repo": "fork"} for r in records[14:16]]
    lines = [json.dumps(r).encode() + b"\n" for r in records + planted]
    (root / "a.jsonl").write_bytes(b"".join(lines[::2]) + b'{"path": "x.py", "content": "\xff"}\n')
    (root / "b.jsonl").write_bytes(b"".join(lines[1::2]))
    return [str(root / "a.jsonl"), str(root / "b.jsonl")]


def pipeline(inputs, output, steps, **kw):
    return Pipeline(inputs=inputs, output=str(output), steps=[make_step(s) for s in steps],
                    shard_bytes=kw.pop("shard_bytes", 150_000), **kw)


def read_output(output):
    shards, _ = plan_shards(sorted(str(p) for p in Path(output).glob("shard-*")), 1 << 40)
    return [d for s in shards for d in read_shard(s, ShardContext(0, "x"))]


def files_of(output):
    return {p.name: p.read_bytes() for p in sorted(Path(output).glob("shard-*"))}


def test_staged_dedup_keeps_what_in_memory_dedup_keeps(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(near_dedup, "SLICE_ROWS", 16)  # several slices of digest and band-key space
    for name, value in (("RUN_PAIRS", 8), ("MERGE_KEYS", 16), ("MIN_BLOCK", 2), ("TRIANGLE_ROWS", 3)):
        monkeypatch.setattr(dedup_cluster, name, value)  # several runs per band, merge chunks, row-wise buckets
    removed = tmp_path / "removed.jsonl"
    summary = run_pipeline(pipeline(corpus, tmp_path / "out", [{"name": "dedup", "removed": str(removed)}]),
                           workers=1, progress=False)
    docs = [d for s in plan_shards(corpus, 1 << 40)[0] for d in read_shard(s, ShardContext(0, "x"))]
    texts = [d["content"] for d in docs]
    exact = dedup.exact_duplicate_groups(texts)
    unique = [i for i in range(len(texts)) if i not in dedup.duplicates_to_drop(exact)]
    near = dedup.near_duplicate_groups([texts[i] for i in unique])
    dropped = dedup.duplicates_to_drop(exact) | {unique[j] for j in dedup.duplicates_to_drop(near)}
    expected = [d for i, d in enumerate(docs) if i not in dropped]
    assert summary.shards_run > 4  # several shards per file: pairs cross shards
    assert len(exact) == 6 and len(near) >= 3  # the planted copies and the closest edits are found
    edits = [(d["content"], docs[[e["path"] for e in docs].index(d["path"][5:])]["content"])
             for d in docs if d["path"].startswith("edit_")]
    jaccards = [dedup.jaccard(dedup.shingles(a), dedup.shingles(b)) for a, b in edits]
    assert any(0.8 <= j < 0.85 for j in jaccards) and any(j < 0.8 for j in jaccards)  # pairs at the threshold
    assert read_output(tmp_path / "out") == expected
    assert summary.outcomes["dedup:dropped:exact"] == 6
    assert summary.outcomes["dedup:dropped:near"] == len(dropped) - 6
    assert summary.skipped == {f"bad_record: {corpus[0]}": 1}
    assert not (tmp_path / "out" / ".state").exists()
    kept_of = {i: (g[0], "exact") for g in exact for i in g[1:]}
    kept_of |= {unique[i]: (unique[g[0]], "near") for g in near for i in g[1:]}
    report = [json.loads(line) for line in removed.read_text().splitlines()]
    assert [(r["path"], r["repo"], r["kind"], r["kept_path"], r["kept_repo"]) for r in report] == [
        (docs[i]["path"], docs[i]["repo"], kind, docs[k]["path"], docs[k]["repo"]) for i, (k, kind) in sorted(kept_of.items())]


FULL = [{"name": "syntax_filter", "max_error_share": 0.02}, {"name": "dedup"}, {"name": "decontam"},
        {"name": "fim", "fim_rate": 0.5, "repo_level_rate": 0.3}]


def test_outputs_are_identical_on_one_and_two_workers_and_ray(corpus, tmp_path, tokenizer):
    ray = pytest.importorskip("ray")
    tokenizer.save(tmp_path / "tok")
    jobs = {"parquet": (FULL[:3], "parquet"), "tokens": (FULL + [{"name": "tokenize", "tokenizer": str(tmp_path / "tok")}],
                                                         "tokens")}
    outputs = []
    for name, options in (("w1", {"workers": 1}), ("w2", {"workers": 2}), ("ray", {"engine": "ray"})):
        if name == "ray":
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20,
                     configure_logging=False)
        try:
            for job, (steps, fmt) in jobs.items():
                run_pipeline(pipeline(corpus, tmp_path / name / job, steps, output_format=fmt), progress=False, **options)
        finally:
            if name == "ray":
                ray.shutdown()
        outputs.append({job: files_of(tmp_path / name / job) for job in jobs})
    assert len(outputs[0]["parquet"]) > 4 and len(outputs[0]["tokens"]) > 8
    assert outputs[0] == outputs[1] == outputs[2]


def test_the_full_pipeline_writes_the_token_shards_of_its_documents(corpus, tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tok")
    text = run_pipeline(pipeline(corpus, tmp_path / "text", FULL, output_format="jsonl"), workers=1, progress=False)
    steps = FULL + [{"name": "tokenize", "tokenizer": str(tmp_path / "tok")}]
    tokens = run_pipeline(pipeline(corpus, tmp_path / "tokens", steps, output_format="tokens"), workers=2,
                          progress=False)
    docs = read_output(tmp_path / "text")
    shards = TokenShards(tmp_path / "tokens")
    tok = load_tokenizer(tmp_path / "tok")
    assert len(shards) == len(docs) == sum(v for k, v in tokens.outcomes.items() if k.startswith("fim:")) > 20
    assert [shards[i].tolist() for i in range(len(docs))] == [
        encode_document(tok, d["path"], d["content"], d.get("special", ())) for d in docs]
    assert shards.num_tokens == tokens.outcomes["tokenize:tokens"] and tokens.outcomes["tokenize:fim_templates"] > 0
    assert {k: v for k, v in tokens.outcomes.items() if not k.startswith("tokenize")} == text.outcomes
    for fmt, steps in (("tokens", FULL), ("jsonl", steps), ("tokens", steps[::-1])):
        with pytest.raises(ValueError, match="^output_format: 'tokens' goes with one tokenize step, the last"):
            pipeline(corpus, tmp_path / "bad", steps, output_format=fmt)


KILLER = """
import sys, time
from iquest_core.data import steps
from iquest_core.data.pipeline import Pipeline, run_pipeline
from iquest_core.data.steps import make_step
original = steps.chain
def slow_chain(step_list, docs, ctx):
    time.sleep(0.4)
    return original(step_list, docs, ctx)
import iquest_core.data.pipeline as driver
driver.chain = slow_chain
run_pipeline(Pipeline(inputs=sys.argv[1:3], output=sys.argv[3], steps=[make_step({"name": "dedup"})],
                      shard_bytes=150_000), workers=1, progress=False)
"""


def test_a_killed_job_resumes_redoing_only_unfinished_shards(corpus, tmp_path):
    whole = run_pipeline(pipeline(corpus, tmp_path / "whole", [{"name": "dedup"}]), workers=1, progress=False)
    total = whole.shards_run
    out = tmp_path / "killed"
    job = subprocess.Popen([sys.executable, "-c", KILLER, *corpus, str(out)], env={**os.environ, "PYTHONPATH": str(REPO)})
    while len(list((out / ".done").glob("pass-0-*"))) < 2 and job.poll() is None:
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    finished = len(list((out / ".done").glob("*shard*")))
    assert 2 <= finished < total
    resumed = run_pipeline(pipeline(corpus, out, [{"name": "dedup"}]), workers=2, progress=False)
    assert (resumed.shards_resumed, resumed.shards_run) == (finished, total - finished)
    assert files_of(out) == files_of(tmp_path / "whole") and resumed.outcomes == whole.outcomes
    again = run_pipeline(pipeline(corpus, out, [{"name": "dedup"}]), workers=1, progress=False)
    assert again.shards_run == 0 and again.outcomes == whole.outcomes


def test_an_output_directory_of_another_job_is_refused(corpus, tmp_path):
    run_pipeline(pipeline(corpus[:1], tmp_path / "out", [{"name": "decontam"}]), workers=1, progress=False)
    before = files_of(tmp_path / "out")
    with pytest.raises(ValueError, match="^output: .* holds another job's outputs"):
        run_pipeline(pipeline(corpus[:1], tmp_path / "out", [{"name": "decontam", "ngram": 8}]), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="^output: .* not a data job's"):
        run_pipeline(pipeline(corpus[:1], tmp_path / "other", [{"name": "decontam"}]), progress=False)
    assert files_of(tmp_path / "out") == before


def test_a_failing_step_names_its_shard(corpus, tmp_path):
    steps = [{"name": "decontam", "benchmarks": [str(tmp_path / "missing.jsonl")]}]
    with pytest.raises(RuntimeError, match=r"^shard 0 \(.*a.jsonl\): ValueError: path: cannot read .*missing.jsonl"):
        run_pipeline(pipeline(corpus, tmp_path / "out", steps), workers=1, progress=False)
    assert not list((tmp_path / "out").glob("shard-*")) and not list((tmp_path / "out" / ".done").iterdir())


def test_data_run_command(corpus, tmp_path, capsys):
    (tmp_path / "p.toml").write_text(f'inputs = {json.dumps(corpus)}\noutput = "out"\noutput_format = "jsonl"\n'
                                     'shard_bytes = 150000\n[[steps]]\nname = "syntax_filter"\n')
    assert load_pipeline(tmp_path / "p.toml").output == str(tmp_path / "out")
    assert iquest(["data", "run", str(tmp_path / "p.toml"), "--workers", "1", "--no-progress"]) == 0
    assert "kept:python" in capsys.readouterr().err
    docs = [d for s in plan_shards(corpus, 1 << 40)[0] for d in read_shard(s, ShardContext(0, "x"))]
    kept = [d for d in docs if syntax_verdict(d["path"], d["content"], 0.0).startswith("kept")]
    assert read_output(tmp_path / "out") == kept and 0 < len(kept) < len(docs)
    (tmp_path / "bad.toml").write_text('inputs = []\noutput = "o"\n[[steps]]\nname = "nope"\n')
    assert iquest(["data", "run", str(tmp_path / "bad.toml")]) == 2
    assert "iquest data run: error: name: unknown step 'nope'" in capsys.readouterr().err
