import csv
import json
import math

import numpy as np
import pytest

from iquest_core.scaling import io
from iquest_core.cli import main
from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.jobs.sweep import (CHUNK_BYTES, EVAL_SHARE, SEQ_LEN, Grid, HeldOutLoss, _path_hash, _chunks, build_corpus, run_name, run_sweep,
                                       source_files, train_command)
from iquest_core.train.recipe import load_recipe, model_config
from iquest_core.train.schema import Source


def write_tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


def code(i, lines=30):
    return "".join(f"def f{i}_{k}(x):\n    return x + {k}\n" for k in range(lines))


def test_corpus_splits_by_path_hash_caps_bytes_and_skips_unusable_files(tmp_path):
    files = {f"pkg/m{i}.py": code(i) for i in range(60)}
    files |= {"pkg/tiny.py": "x = 1\n", "pkg/minified.py": "x=1;" * 400, "pkg/latin1.py": b"# \xe9\n" + b"x = 1\n" * 80,
              "pkg/notes.txt": code(99), "site-packages/dep.py": code(98)}
    write_tree(tmp_path, files)
    found = source_files("python", (str(tmp_path),))
    assert {p.name for p in found} == {f"m{i}.py" for i in range(60)} | {"minified.py", "latin1.py"}
    assert found == source_files("python", (str(tmp_path),))  # a fixed order
    train, held_out = build_corpus("python", 10**9, (str(tmp_path),))
    names = {r["path"].rsplit("/", 1)[1] for r in train + held_out}
    assert names == {f"m{i}.py" for i in range(60)}
    assert all(_path_hash(r["path"]) % EVAL_SHARE == 0 for r in held_out)
    assert all(_path_hash(r["path"]) % EVAL_SHARE != 0 for r in train)
    small, _ = build_corpus("python", 3000, (str(tmp_path),))
    size = sum(len(r["text"]) for r in small)
    assert 3000 <= size < 3000 + max(len(r["text"]) for r in small) and len(small) < len(train)


def test_files_are_cut_at_line_ends_into_chunks_of_about_chunk_bytes():
    rng = np.random.default_rng()
    lines = ["x" * int(n) + "\n" for n in rng.integers(0, 300, 200)] + ["y" * (3 * CHUNK_BYTES) + "\n", "tail"]
    text = "".join(lines)
    pieces = _chunks(text)
    assert "".join(pieces) == text and len(pieces) > 1
    for piece in pieces:
        assert piece.endswith("\n") or piece == pieces[-1]
        assert len(piece) <= CHUNK_BYTES or piece.count("\n") <= 1  # only an overlong line stands alone


def test_c_corpus_refuses_cplusplus_headers_and_an_empty_language_is_named(tmp_path):
    write_tree(tmp_path, {**{f"inc/h{i}.h": f"int f{i}(int x);\n" * 30 for i in range(40)},
                          "inc/cpp.h": "namespace a {\nint g();\n}\n" * 30})
    train, held_out = build_corpus("c", 10**9, (str(tmp_path / "inc"),))
    assert all("namespace" not in r["text"] for r in train + held_out) and len(train + held_out) == 40
    with pytest.raises(ValueError, match="too little javascript"):
        build_corpus("javascript", 10**9, (str(tmp_path),))


def test_train_command_is_a_valid_tiny_recipe_of_the_requested_model(tmp_path):
    grid = Grid(batch_tokens=512, lr=2e-3)
    command = train_command(tmp_path / "run", tmp_path / "py.jsonl", tmp_path / "tok", (48, 3), 5000, grid)
    assert command[1:7] == ["-m", "iquest_core.train", "--recipe", "tiny", "--output", str(tmp_path / "run")]
    recipe = load_recipe("tiny", [a for a in command[7:] if a != "--set"])
    config = model_config(recipe)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (48, 3, 144)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (3, 3, 16)
    assert recipe.steps == 10 and recipe.batch_tokens == 512 and recipe.optim.lr == 2e-3
    assert recipe.data.sources == [Source(path=str(tmp_path / "py.jsonl"), kind="jsonl", weight=1.0)]
    assert recipe.data.tokenizer == str(tmp_path / "tok") and recipe.checkpoint_every == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(languages=("python", "cobol")), "cobol"), (dict(sizes=((40, 1),)), "sizes"), (dict(sizes=((32, 0),)), "sizes"),
    (dict(batch_tokens=300), "batch_tokens"), (dict(tokens=(512,)), "tokens"), (dict(eval_tokens=100), "eval_tokens"),
    (dict(jobs=0), "jobs"), (dict(lr=0.0), "lr"), (dict(tokens=()), "tokens"),
])
def test_bad_grid_raises_value_error_naming_it(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Grid(**kwargs)


def test_cli_sweep_refuses_malformed_lists(tmp_path, capsys):
    assert main(["scaling", "sweep", "--output", str(tmp_path), "--sizes", "32"]) == 2
    assert "--sizes" in capsys.readouterr().err
    assert main(["scaling", "sweep", "--output", str(tmp_path), "--languages", "python,fortran"]) == 2
    assert "fortran" in capsys.readouterr().err


@pytest.fixture(scope="module")
def one_run_sweep(tmp_path_factory):
    """A sweep folder holding one real run: python, 16x1, 1536 tokens (3 steps of 512)."""
    output = tmp_path_factory.mktemp("sweep")
    grid = Grid(languages=("python",), sizes=((16, 1),), tokens=(1536,), batch_tokens=512, corpus_bytes=200_000,
                eval_tokens=2048, jobs=1)
    return output, grid, run_sweep(output, grid)


def test_one_real_run_end_to_end_and_a_second_sweep_reuses_it(one_run_sweep):
    output, grid, runs_csv = one_run_sweep
    rows = list(csv.DictReader(open(runs_csv)))
    assert len(rows) == 1
    row = rows[0]
    assert row["language"] == "python" and int(row["tokens"]) == 1536 and int(row["steps"]) == 3
    # Non-embedding parameters: everything but the (tied) 512 x 16 embedding.
    assert int(row["params"]) == int(row["params_total"]) - 512 * 16
    assert 0 < float(row["loss"]) < math.log(512) + 0.1 and math.isfinite(float(row["train_loss"]))
    assert set(io.read_runs(runs_csv)) == {"python"}
    result = output / "runs" / row["run"] / "result.json"
    stamp = result.stat().st_mtime_ns
    assert run_sweep(output, grid) == runs_csv and result.stat().st_mtime_ns == stamp
    assert json.loads(result.read_text())["loss"] == float(row["loss"])


def test_held_out_windows_go_round_robin_over_files(one_run_sweep, tmp_path):
    tokenizer_dir = one_run_sweep[0] / "tokenizer"
    tokenizer = load_tokenizer(tokenizer_dir)
    texts = [code(0, 200), code(1, 20), code(2, 200)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    ids = [tokenizer.encode(t) + [tokenizer.special_id("<|endoftext|>")] for t in texts]
    assert SEQ_LEN + 1 <= len(ids[1]) < 2 * SEQ_LEN + 1 < len(ids[0])  # file 1 has one window, 0 and 2 more
    held_out = HeldOutLoss(tmp_path / "eval.jsonl", tokenizer_dir, 5 * SEQ_LEN)
    expected = [ids[0][:SEQ_LEN + 1], ids[1][:SEQ_LEN + 1], ids[2][:SEQ_LEN + 1],
                ids[0][SEQ_LEN:2 * SEQ_LEN + 1], ids[2][SEQ_LEN:2 * SEQ_LEN + 1]]
    assert held_out.windows.tolist() == expected
    with pytest.raises(ValueError, match="eval_tokens"):
        HeldOutLoss(tmp_path / "eval.jsonl", tokenizer_dir, 64 * SEQ_LEN)


def test_cli_sweep_collects_finished_runs_and_fits_them(one_run_sweep, capsys):
    output = one_run_sweep[0]
    sizes, tokens = {(16, 1): 3393, (32, 1): 12418}, (1024, 2048, 4096)
    for (hidden, layers), params in sizes.items():
        for t in tokens:
            name = run_name("python", (hidden, layers), t)
            (output / "runs" / name).mkdir(parents=True, exist_ok=True)
            loss = 30 * params ** -0.4 + 20 * t ** -0.3 + 1.5
            (output / "runs" / name / "result.json").write_text(json.dumps(
                {"language": "python", "params": params, "tokens": t, "loss": loss, "run": name}))
    argv = ["scaling", "sweep", "--output", str(output), "--languages", "python", "--sizes", "16x1,32x1", "--tokens",
            "1024,2048,4096", "--batch-tokens", "512", "--corpus-bytes", "2e5", "--eval-tokens", "2048",
            "--bootstrap", "0"]
    assert main(argv) == 0  # every run is finished already: nothing trains
    assert "6 runs" in capsys.readouterr().out
    runs = io.read_runs(output / "runs.csv")["python"]
    fit = io.load_law(output / "law.json").per_language["python"]
    assert fit.n_points == 6 and sorted(runs["tokens"]) == sorted(tokens * 2)
    np.testing.assert_allclose(fit.predict(runs["params"], runs["tokens"]), runs["loss"], rtol=1e-3)
    assert (output / "loss.png").is_file() and (output / "iso_loss.png").is_file()
