import json

import numpy as np
import pytest

from iquest_core.data import fim
from iquest_core.data.jobs import filter as filter_job
from iquest_core.data.jobs import fim as fim_job
from iquest_core.data.jobs import tokenize as tokenize_job
from iquest_core.data.shards import TokenShards
from iquest_core.data.sources import read_documents
from iquest_core.data.tokenizer import SPECIAL_TOKENS, load_tokenizer
from tests.data.conftest import FILES


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def unpack(record):
    """(context files, target path, FimSplit) parsed back from a FIM record through its special spans."""
    text, spans = record["text"], record["special"]
    pieces = [text[b:c] for (_, b), (c, _) in zip(spans, spans[1:] + [(len(text), None)])]
    names = [text[a:b] for a, b in spans]
    assert names[-4:] == ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|im_end|>"] and pieces[-1] == ""
    prefix, suffix, middle = pieces[-4:-1]
    context, target = [], None
    if record["level"] == "repo":
        assert names[0] == "<|repo_name|>" and pieces[0] == f"{record['repo']}\n"
        assert names[1:-4] == ["<|file_sep|>"] * (len(names) - 5)
        for piece in pieces[1:-5]:
            path, _, content = piece.partition("\n")
            context.append((path, content[:-1]))
        target = pieces[-5][:-1]
    return context, target, fim.FimSplit(prefix, middle, suffix)


@pytest.fixture
def inputs(tmp_path):
    records = [{"path": "x.py", "content": "def f():\n    return '<|im_end|>'\n", "repo": None},
               {"path": "bin.dat", "content": "\x00\x01", "repo": None}]
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return [str(FILES), str(tmp_path / "extra.jsonl")]


def test_fim_job_file_and_repo_level(inputs, tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tok")
    out = tmp_path / "out.jsonl"
    summary = fim_job.run(fim_job.parser().parse_args(
        [*inputs, "--output", str(out), "--fim-rate", "1", "--repo-level-rate", "0.5", "--seed", "3",
         "--tokenizer", str(tmp_path / "tok"), "--context-tokens", "3000", "--workers", "1"]))
    docs = {(d.repo, d.path): d.content for d in read_documents(inputs)}
    records = read_jsonl(out)
    assert summary.documents == len(records) == len(docs) and dict(summary.skipped) == {"binary": 1}
    assert sum(summary.outcomes.values()) == len(records)
    levels = {r["level"] for r in records}
    assert levels == {None, "file", "repo"}
    for record in records:
        content = docs[(record["repo"], record["path"])]
        assert record["language"] == fim.language_of(record["path"])
        if record["mode"] == "plain":
            assert record["text"] == content and record["special"] == []
            continue
        context, target, split = unpack(record)
        assert split.text == content and split.middle
        if record["level"] == "repo":
            assert target == record["path"] and record["path"] not in {p for p, _ in context}
            assert all(docs[(record["repo"], p)] == c for p, c in context)
            assert sum(1 + len(tokenizer.encode(f"{p}\n{c}\n")) for p, c in context) <= 3000
            assert record["text"] == fim.format_repo(record["repo"], context, target, split)
        else:
            assert record["text"] == fim.format_file(split)


def test_fim_job_is_deterministic_whatever_the_workers(inputs, tmp_path):
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.jsonl"
        fim_job.main([*inputs, "--output", str(out), "--repo-level-rate", "0.5", "--seed", "11",
                      "--workers", str(workers)])
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    other = tmp_path / "other.jsonl"
    fim_job.main([*inputs, "--output", str(other), "--repo-level-rate", "0.5", "--seed", "12"])
    assert other.read_bytes() != outputs[0]


def test_fim_job_counts_fallbacks(tmp_path):
    out = tmp_path / "out.jsonl"
    summary = fim_job.run(fim_job.parser().parse_args(
        [str(FILES), "--output", str(out), "--fim-rate", "1", "--modes", "function", "--workers", "1"]))
    # LICENSES/, NOTICE have no language; extension.cpp does not parse cleanly but has functions clear of errors
    no_language = sum(fim.language_of(d.path) is None for d in read_documents([FILES]))
    assert no_language == 7 and summary.documents == no_language + 19
    assert summary.outcomes == {"plain:no_language": 7, "file:function": 19}


def test_fim_job_bad_arguments(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    for args, name in ((["--modes", "word"], "'word'"), (["--context-tokens", "-1"], "context_tokens")):
        with pytest.raises(ValueError, match=name):
            fim_job.run(fim_job.parser().parse_args([str(FILES), "--output", str(out), *args]))
    assert fim_job.main([str(FILES), "--output", str(out), "--modes", "word"]) == 2
    assert capsys.readouterr().err.startswith("iquest data fim: error: mode: unknown mode 'word'")
    assert fim_job.main([str(tmp_path / "missing"), "--output", str(out)]) == 2
    assert "inputs:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        fim_job.main([str(FILES), "--output", str(out), "--fim-rate", "1.5"])
    assert exit_info.value.code == 2
    assert not out.exists()


@pytest.mark.parametrize("job", [fim_job, filter_job, tokenize_job])
def test_help(job, capsys):
    with pytest.raises(SystemExit) as exit_info:
        job.main(["--help"])
    assert exit_info.value.code == 0 and "--output" in capsys.readouterr().out


def test_filter_job(tmp_path):
    out = tmp_path / "kept.jsonl"
    summary = filter_job.run(filter_job.parser().parse_args([str(FILES), "--output", str(out), "--workers", "2"]))
    kept = read_jsonl(out)
    assert summary.outcomes["dropped:cpp"] == 1 and "cpp/extension.cpp" not in {r["path"] for r in kept}
    assert summary.outcomes["kept:unchecked"] == 7 and len(kept) == summary.documents - 1
    filter_job.main([str(FILES), "--output", str(out), "--max-error-share", "0.01"])
    assert len(read_jsonl(out)) == summary.documents
    assert [d.path for d in read_documents([out])] == [d.path for d in read_documents([FILES])]


def test_tokenize_job_round_trip(inputs, tmp_path, tokenizer):
    tokenizer.save(tmp_path / "tok")
    fim_out = tmp_path / "fim.jsonl"
    fim_job.main([*inputs, "--output", str(fim_out), "--repo-level-rate", "0.5", "--workers", "1"])
    shards_dir = tmp_path / "shards"
    summary = tokenize_job.run(tokenize_job.parser().parse_args(
        [str(fim_out), "--tokenizer", str(tmp_path / "tok"), "--output", str(shards_dir), "--shard-bytes", "30000",
         "--workers", "2"]))
    records = read_jsonl(fim_out)
    shards = TokenShards(shards_dir)
    tok = load_tokenizer(tmp_path / "tok")
    assert len(shards) == len(records) == summary.documents and summary.outcomes["shards"] == len(shards.index["shards"]) > 2
    assert summary.outcomes["fim_templates"] == sum(bool(r["special"]) for r in records) > 0
    assert sorted(p.name for p in shards_dir.iterdir()) == sorted(
        ["index.json"] + [f"{s['name']}.{kind}.npy" for s in shards.index["shards"] for kind in ("tokens", "offsets")])
    assert shards.vocab_size == tok.vocab_size and shards.num_tokens == summary.outcomes["tokens"]
    eos = tok.special_id("<|endoftext|>")
    for ids, record in zip(shards, records):
        ids = ids.tolist()
        specials = [i for i in ids if i < len(SPECIAL_TOKENS)]
        if record["special"]:
            assert tok.decode(ids) == record["text"]
            assert specials == [tok.special_id(record["text"][a:b]) for a, b in record["special"]]
        else:  # content, a literal "<|im_end|>" included, has no special id but the final <|endoftext|>
            assert tok.decode(ids[:-1]) == record["text"] and specials == [eos] and ids[-1] == eos
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(ValueError, match="already exists"):
        tokenize_job.run(tokenize_job.parser().parse_args(
            [str(fim_out), "--tokenizer", str(tmp_path / "tok"), "--output", str(shards_dir)]))


def test_tokenize_job_failure_leaves_nothing(tmp_path, tokenizer, capsys):
    tokenizer.save(tmp_path / "tok")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"path": "a.py", "text": "<|fim_prefix|>x", "special": [[5, 2]]}) + "\n")
    assert tokenize_job.main([str(bad), "--tokenizer", str(tmp_path / "tok"), "--output", str(tmp_path / "s"),
                              "--workers", "1"]) == 2
    error = capsys.readouterr().err
    assert "iquest data tokenize: error: shard 0 (" in error and "special: span (5, 2)" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "tok"]
    np.testing.assert_equal(len(list((tmp_path / "tok").iterdir())), 2)
