"""Repository completion: points need another file, the true line scores EM 1.0 in both settings, edit
similarity is Levenshtein's, the cross-file prompt carries the files repo-level FIM selects, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iquest_core.data import fim
from iquest_core.eval import repo_completion as rc

REPO = {
    "geometry/shapes.py": "class Circle:\n    def __init__(self, r):\n        self.r = r\n\n\ndef area(c):\n"
                          "    return 3.14159 * c.r ** 2\n",
    "app/main.py": "import sys\nfrom geometry.shapes import Circle, area\n\n\ndef run(r):\n    c = Circle(r)\n"
                   "    value = area(c)\n    print(value)\n    return value\n",
    "app/util.js": "function twice(x) {\n  const z = 2 * x;\n  console.log(z);\n}\n",  # nothing in common
    "README.md": "not code\n",
}


@pytest.fixture
def repo(tmp_path) -> Path:
    for path, text in REPO.items():
        (tmp_path / "toy" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "toy" / path).write_text(text)
    return tmp_path / "toy"


def test_points_name_what_another_file_defines(repo):
    files = rc.load_files(repo)
    assert set(files) == {"geometry/shapes.py", "app/main.py", "app/util.js"}
    points = rc.completion_points(files, points=50, per_file=50, seed=0)
    assert {(p["path"], p["target"].strip()) for p in points} == {
        ("app/main.py", "c = Circle(r)"), ("app/main.py", "value = area(c)")}
    for p in points:
        lines = files[p["path"]].split("\n")
        assert p["prefix"] == "\n".join(lines[:p["line"] - 1]) + "\n" and p["target"] == lines[p["line"] - 1]


def test_ground_truth_scores_exact_match_one_on_this_repository(tmp_path):
    root = Path(__file__).resolve().parents[2]
    args = rc._parser().parse_args(["--repo", str(root), "--canonical", "--points", "60", "--output", str(tmp_path)])
    summary = rc.repo_completion_main(args)
    assert summary["points"] == 60 and {s: (v["em"], v["es"]) for s, v in summary["settings"].items()} == {
        "in-file": (1.0, 1.0), "cross-file": (1.0, 1.0)}
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len({r["path"] for r in rows}) > 10


def test_edit_similarity_is_one_minus_normalised_levenshtein():
    assert rc.edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert rc.edit_similarity("", "") == 1.0 and rc.edit_similarity("abc", "") == 0.0
    assert rc.edit_similarity("flaw", "lawn") == pytest.approx(0.5)
    assert rc.edit_similarity("abc", "abc") == 1.0


def test_wrong_lines_score_below_one(repo, tmp_path):
    points = rc.completion_points(rc.load_files(repo), points=50, per_file=50, seed=0)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps({"id": rc.item_id(p, s), "completion": p["target"].strip()[:-1] + "\nmore"})
                             + "\n" for p in points for s in rc.SETTINGS))
    summary = rc.repo_completion_main(rc._parser().parse_args(
        ["--repo", str(repo), "--completions", str(wrong), "--output", str(tmp_path / "o")]))
    assert all(v["em"] == 0.0 and 0.8 < v["es"] < 1.0 for v in summary["settings"].values())


def test_cross_file_prompt_holds_the_selected_context(repo, tiny_model_dir, tmp_path):
    from iquest_core.data.tokenizer import load_tokenizer
    tokenizer = load_tokenizer(tiny_model_dir)
    files = rc.load_files(repo)
    point = rc.completion_points(files, points=1, per_file=1, seed=0)[0]
    context = fim.ContextIndex(files, tokenizer).select(point["path"], budget_tokens=512)
    assert [path for path, _ in context] == ["geometry/shapes.py"]
    text = tokenizer.decode(rc.prompt_ids(point, "toy", context, tokenizer, prefix_tokens=1000))
    assert text == (f"<|repo_name|>toy\n<|file_sep|>geometry/shapes.py\n{files['geometry/shapes.py']}\n"
                    f"<|file_sep|>{point['path']}\n{point['prefix']}")
    bare = tokenizer.decode(rc.prompt_ids(point, "toy", [], tokenizer, prefix_tokens=3))
    assert bare.startswith(f"<|repo_name|>toy\n<|file_sep|>{point['path']}\n") and point["prefix"].endswith(
        bare.split(f"{point['path']}\n", 1)[1])
    summary = rc.repo_completion_main(rc._parser().parse_args(
        ["--repo", str(repo), "--model", str(tiny_model_dir), "--max-new-tokens", "5", "--output", str(tmp_path)]))
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert summary["points"] == 2 and all("\n" not in r["completion"] for r in rows)
    assert {r["setting"]: r["context_files"] for r in rows} == {"in-file": [], "cross-file": ["geometry/shapes.py"]}


def test_bad_input_is_named(tmp_path, repo):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# text only\n")
    with pytest.raises(ValueError, match="--repo: .*docs has no files of a supported language"):
        rc.load_files(tmp_path / "docs")
    other = tmp_path / "infill.jsonl"
    other.write_text(json.dumps({"id": "HumanEval/0/single-line", "completion": ""}) + "\n")
    with pytest.raises(ValueError, match="'HumanEval/0/single-line' is not a repo-completion item"):
        rc.repo_completion_main(rc._parser().parse_args(
            ["--repo", str(repo), "--completions", str(other), "--output", str(tmp_path / "o")]))
    assert not (tmp_path / "o").exists()
