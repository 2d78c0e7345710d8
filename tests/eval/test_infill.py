"""HumanEval infilling: the cuts reproduce the canonical solution and respect their mode, canonical middles
pass in every mode, empty middles fail, and the CLI names bad input."""

from __future__ import annotations

import json

import pytest

from iquest_core.eval import humaneval, infill

PROBLEMS = dict(list(humaneval.load_problems().items())[:12])


def test_cuts_rebuild_the_solution_and_respect_the_mode():
    items = infill.build_items(PROBLEMS, list(infill.MODES), seed=3)
    assert items == infill.build_items(PROBLEMS, list(infill.MODES), seed=3)
    assert items != infill.build_items(PROBLEMS, list(infill.MODES), seed=4)
    assert {i["mode"] for i in items} == set(infill.MODES)
    for item in items:
        problem = PROBLEMS[item["task_id"]]
        assert item["prefix"] + item["middle"] + item["suffix"] == problem["prompt"] + problem["canonical_solution"]
        assert item["prefix"].startswith(problem["prompt"]) and item["middle"]
        lines = item["middle"].rstrip("\n").count("\n") + 1
        if item["mode"] == "single-line":
            assert lines == 1 and item["middle"].strip()
        elif item["mode"] == "multi-line":
            assert 2 <= lines <= 3


def _run(tmp_path, *args) -> tuple[dict, list[dict]]:
    summary = infill.infill_main(infill._parser().parse_args([*args, "--limit", "12", "--workers", "2",
                                                              "--output", str(tmp_path)]))
    return summary, [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]


def test_canonical_middles_pass_and_empty_middles_fail(tmp_path):
    summary, rows = _run(tmp_path / "canonical", "--canonical")
    assert summary["pass@1"] == 1.0 and set(summary["modes"]) == set(infill.MODES)
    assert all(m["pass@1"] == 1.0 and m["items"] >= 8 for m in summary["modes"].values())
    empty = tmp_path / "empty.jsonl"
    empty.write_text("".join(json.dumps({"id": r["id"], "completion": ""}) + "\n" for r in rows))
    summary, rows = _run(tmp_path / "empty", "--completions", str(empty))
    assert summary["pass@1"] == 0.0 and all(r["status"] in ("failed", "error") for r in rows)


def test_prompt_is_the_file_level_template_up_to_the_middle(tiny_model_dir):
    from iquest_core.data.tokenizer import load_tokenizer
    tokenizer = load_tokenizer(tiny_model_dir)
    item = infill.build_items(PROBLEMS, ["single-line"])[0]
    text = tokenizer.decode(infill.prompt_ids(item, tokenizer))
    assert text == f"<|fim_prefix|>{item['prefix']}<|fim_suffix|>{item['suffix']}<|fim_middle|>"


def test_model_generation_runs_end_to_end(tmp_path, tiny_model_dir):
    summary = infill.infill_main(infill._parser().parse_args(
        ["--model", str(tiny_model_dir), "--limit", "2", "--max-new-tokens", "6", "--output", str(tmp_path)]))
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert summary["items"] == len(rows) >= 5 and 0 <= summary["pass@1"] <= 1
    assert all(isinstance(r["completion"], str) and "<|im_end|>" not in r["completion"] for r in rows)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="--modes: unknown mode 'whole-file'"):
        infill.parse_modes("single-line,whole-file")
    other = tmp_path / "bfcl.jsonl"
    other.write_text(json.dumps({"id": "simple_python_0", "completion": ""}) + "\n")
    with pytest.raises(ValueError, match="'simple_python_0' is not a humaneval-infill item"):
        _run(tmp_path / "out", "--completions", str(other))
    assert not (tmp_path / "out").exists()
