"""The step interface (registry, options), shard planning and reading (byte ranges, row groups, directories,
bad input counted with its file), writers (formats, determinism), and the code steps against the jobs they
came from."""

import gzip
import json
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iquest_core.data import steps, syntax
from iquest_core.data.sources import read_documents
from iquest_core.data.steps import ShardContext, chain, make_step, register, step_table
from iquest_core.data.steps.io import output_format, plan_shards, read_shard, write_shard
from tests.data.conftest import FILES


def records(n, width=40):
    return [{"path": f"f{i}.py", "content": f"x = {i}\n" + "y" * (i % width), "repo": "r", "extra": i}
            for i in range(n)]


def write_lines(path, recs, raw_lines=()):
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in recs) + b"".join(raw_lines))


def read_all(shards):
    ctx = ShardContext(0, "shard-00000")
    return [doc for shard in shards for doc in read_shard(shard, ctx)], ctx


def test_make_step_refuses_unknown_names_and_options():
    with pytest.raises(ValueError, match="^name: unknown step 'nope'.*syntax_filter"):
        make_step({"name": "nope"})
    with pytest.raises(ValueError, match="^steps: step 'syntax_filter' has no option 'max_errors'"):
        make_step({"name": "syntax_filter", "max_errors": 0.1})
    with pytest.raises(ValueError, match="^max_error_share:"):
        make_step({"name": "syntax_filter", "max_error_share": 2})
    step = make_step({"name": "decontam", "ngram": 7})
    assert make_step(step_table(step)) == step and step.ngram == 7


def test_register_refuses_a_second_class_under_one_name():
    @dataclass
    class Other:
        name: ClassVar[str] = "syntax_filter"

    with pytest.raises(ValueError, match="^name: step 'syntax_filter' is registered twice"):
        register(Other)
    assert "syntax_filter" in steps.step_names()


@pytest.mark.parametrize("max_bytes", [1, 37, 200, 10**6])
def test_byte_ranges_read_every_line_once_in_order(tmp_path, max_bytes):
    recs = records(25)
    write_lines(tmp_path / "a.jsonl", recs)
    shards, skipped = plan_shards([tmp_path / "a.jsonl"], max_bytes)
    docs, ctx = read_all(shards)
    assert docs == recs and not skipped and not ctx.skipped
    assert len(shards) == -(-(tmp_path / "a.jsonl").stat().st_size // max_bytes)


def test_bad_input_is_counted_with_its_file(tmp_path):
    write_lines(tmp_path / "a.jsonl", records(3), [b'{"path": "b.py", "content": "\xff\xfe"}\n', b"not json\n"])
    data = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records(400)))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    inputs = [tmp_path / name for name in ("a.jsonl", "cut.jsonl.gz", "bad.parquet")]
    shards, skipped = plan_shards(inputs, 1 << 20)
    assert skipped == [(str(tmp_path / "bad.parquet"), "corrupt (ArrowInvalid)")]
    docs, ctx = read_all(shards)
    before_cut = docs[3:]
    assert docs[:3] == records(3) and 0 < len(before_cut) < 400 and before_cut == records(400)[:len(before_cut)]
    assert ctx.skipped == {f"bad_record: {tmp_path / 'a.jsonl'}": 2, f"corrupt: {tmp_path / 'cut.jsonl.gz'}": 1}


def test_parquet_row_groups_and_directories(tmp_path):
    recs = records(50)
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "a.parquet", row_group_size=10)
    shards, _ = plan_shards([tmp_path / "a.parquet"], 1)
    assert [(s.start, s.end) for s in shards] == [(i, i + 1) for i in range(5)]
    assert read_all(shards)[0] == recs
    shards, _ = plan_shards([FILES], 30_000)
    expected = [{"path": d.path, "content": d.content, "repo": d.repo} for d in read_documents([FILES])]
    assert len(shards) > 3 and read_all(shards)[0] == expected


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_writers_round_trip_and_are_deterministic(tmp_path, name):
    recs = records(2500)
    assert write_shard(tmp_path / name, iter(recs)) == (2500, sum(len(r["content"]) for r in recs))
    first = (tmp_path / name).read_bytes()
    write_shard(tmp_path / name, iter(recs))
    assert (tmp_path / name).read_bytes() == first
    assert read_all(plan_shards([tmp_path / name], 1 << 20)[0])[0] == recs
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_output_format_names_the_argument():
    assert output_format("x/y.JSONL.GZ") == "jsonl.gz"
    with pytest.raises(ValueError, match="^output:"):
        output_format("y.csv")


def test_syntax_filter_step_drops_what_does_not_parse():
    docs = [{"path": d.path, "content": d.content, "repo": d.repo} for d in read_documents([FILES])]
    docs.append({"path": "broken.py", "content": "def f(:\n", "repo": None})
    ctx = ShardContext(0, "shard-00000")
    kept = list(chain([make_step({"name": "syntax_filter"})], iter(docs), ctx))
    clean = [d["path"] for d in docs if syntax.language_of(d["path"]) is None
             or syntax.parse(d["content"], syntax.language_of(d["path"])).error_share() == 0]
    assert [d["path"] for d in kept] == clean and "broken.py" not in clean and len(clean) > 10
    assert ctx.outcomes["syntax_filter:dropped:python"] >= 1 and sum(ctx.outcomes.values()) == len(docs)


def test_line_length_drops_minified_and_long_line_files():
    step = make_step({"name": "line_length", "max_line": 50, "max_mean": 20})
    docs = [{"path": "a.py", "content": "x = 1\ny = 2\n", "repo": None},                 # kept
            {"path": "b.js", "content": "a" * 51 + "\nb\n", "repo": None},               # longest line 51
            {"path": "c.js", "content": "\n".join(["c" * 30] * 4), "repo": None},        # mean 30 > 20
            {"path": "d.py", "content": "", "repo": None},                               # empty: kept
            {"path": "e.py", "content": "e" * 50 + "\n" + "f\n" * 3, "repo": None}]      # longest = limit: kept
    ctx = ShardContext(0, "shard-00000")
    assert [d["path"] for d in step.run(iter(docs), ctx)] == ["a.py", "d.py", "e.py"]
    assert ctx.outcomes == {"kept": 3, "dropped:longest_line": 1, "dropped:mean_line": 1}
    with pytest.raises(ValueError, match="^max_line:"):
        make_step({"name": "line_length", "max_line": 0})
    with pytest.raises(ValueError, match="^max_mean:"):
        make_step({"name": "line_length", "max_mean": "wide"})
