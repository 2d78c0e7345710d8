"""Small recipes and run comparisons for the trainer tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

from iquest_core.train.export import load_checkpoint_model
from iquest_core.train.metrics import read_metrics
from iquest_core.jsonl import write_jsonl
from iquest_core.train.recipe import load_recipe
from iquest_core.train.schema import Recipe


def _fixed_corpus() -> Path:
    """The trainer tests' text: the licensed source files under tests/data/files, so that the runs (and the
    tolerances they are compared at) do not change whenever a file of the package does."""
    files = sorted(p for p in (Path(__file__).parents[1] / "data" / "files").rglob("*.*")
                   if p.is_file() and p.suffix not in (".md", ".txt"))
    path = Path(tempfile.mkdtemp(prefix="iquest-test-corpus-")) / "corpus.jsonl"
    write_jsonl(path, ({"text": p.read_text(encoding="utf-8", errors="replace")} for p in files))
    return path


CORPUS = _fixed_corpus()

# A few-thousand-parameter LoopCoder over a 300-token BPE, 4 rows of 64 tokens per step.
SMALL = ["seq_len=64", "batch_tokens=256", "steps=3", "checkpoint_every=0", "schedule.warmup_steps=1",
         "model.vocab_size=300", "model.hidden_size=32", "model.intermediate_size=64", "model.num_attention_heads=4",
         "model.num_key_value_heads=2", "model.head_dim=8", "model.loop_window_size=8", "optim.lr=1e-2",
         f'data.sources=[{{path="{CORPUS}", kind="jsonl"}}]']


def small_recipe(*overrides: str) -> Recipe:
    return load_recipe("tiny", [*SMALL, *overrides])


def losses(output: Path) -> list[float]:
    return [record["loss"] for record in read_metrics(output)]


WALL_CLOCK = {"tokens_per_s"}  # logged metrics that measure the machine, not the run


def assert_same_metrics(reference: Path, output: Path, tol: float = 1e-5, steps: int = 3) -> None:
    """Both runs logged `steps` records with the same keys and every metric equal (floats within `tol`
    relative, everything else exactly), the wall-clock ones aside."""
    a, b = read_metrics(reference), read_metrics(output)
    assert len(a) == len(b) == steps
    for x, y in zip(a, b):
        assert x.keys() == y.keys(), (x, y)
        for key in sorted(x.keys() - WALL_CLOCK):
            if isinstance(x[key], float):
                assert abs(x[key] - y[key]) <= tol * abs(x[key]), (x["step"], key, x[key], y[key])
            else:
                assert x[key] == y[key], (x["step"], key, x[key], y[key])


def assert_same_run(reference: Path, output: Path, tol: float = 1e-5, steps: int = 3) -> None:
    """assert_same_metrics, and the step-`steps` weights equal within `tol` relative."""
    assert_same_metrics(reference, output, tol, steps)
    ref = load_checkpoint_model(reference / "checkpoints" / f"step-{steps}").state_dict()
    got = load_checkpoint_model(output / "checkpoints" / f"step-{steps}").state_dict()
    assert ref.keys() == got.keys()
    for name in ref:
        err = ((got[name] - ref[name]).abs().max() / ref[name].abs().max()).item()
        assert err <= tol, (name, err)
