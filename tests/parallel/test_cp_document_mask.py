"""Context parallelism with document masking in the trainer: cp=2 with data.document_mask = true on 2 gloo
ranks trains to the losses and parameters of one process with document masking (1e-5); the packed
micro-batch is padded to a multiple of 2 * cp by one label-less document."""

import os
import random
from pathlib import Path

import torch

import iquest_core
from iquest_core.data.loader import Row, model_inputs
from iquest_core.train.recipe import load_recipe
from iquest_core.data.packing import IGNORE_INDEX
from iquest_core.train.trainer import train
from iquest_core.jsonl import write_jsonl
from tests.ranks import spawn
from tests.train.helpers import assert_same_run, small_recipe

# Adam's update of a gradient entry that nearly cancels (|g| << eps) is lr * g / eps: the summation-order
# rounding of such entries is amplified by lr / eps. On these short documents eps = 1e-5 (as in
# tests/train/test_distributed.py) left parameter errors of 2e-6 to 9e-6 after 3 steps, with or without
# document masking (losses within 2e-7), and once above 1e-5; eps = 1e-4 leaves 0.7e-6 to 1.9e-6.
LR = ("optim.lr=3e-3", "optim.eps=1e-4")


def _row(lengths: list[int], seq_len: int, gen: torch.Generator) -> Row:
    real = sum(lengths)
    ids = torch.cat([torch.randint(1, 300, (real,), generator=gen), torch.zeros(seq_len - real, dtype=torch.int64)])
    labels = torch.cat([ids[1:real], torch.full((seq_len - real + 1,), IGNORE_INDEX)])
    positions = torch.cat([*(torch.arange(n) for n in lengths), torch.zeros(seq_len - real, dtype=torch.int64)])
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return Row(ids, labels, positions, cu, [(0, d) for d in range(len(lengths))])


def test_model_inputs_pad_the_packed_sequence_to_a_multiple():
    gen = torch.Generator().manual_seed(0)
    rows = [_row([5, 1, 9], 20, gen), _row([12], 20, gen)]  # 27 real tokens
    plain = model_inputs(rows, document_mask=True)
    assert plain["input_ids"].shape == (1, 27) and plain["cu_seqlens"].tolist() == [0, 5, 6, 15, 27]
    padded = model_inputs(rows, document_mask=True, multiple_of=8)
    assert padded["input_ids"].shape == (1, 32)
    assert padded["cu_seqlens"].tolist() == [0, 5, 6, 15, 27, 32] and padded["cu_seqlens"].dtype == torch.int32
    for key in ("input_ids", "labels", "position_ids"):
        assert torch.equal(padded[key][:, :27], plain[key]), key
    assert padded["labels"][0, 27:].tolist() == [IGNORE_INDEX] * 5
    assert padded["position_ids"][0, 27:].tolist() == [0, 1, 2, 3, 4]
    assert padded["input_ids"][0, 27:].tolist() == [0] * 5
    assert padded["max_seqlen"] == plain["max_seqlen"] == 12
    assert torch.equal(model_inputs(rows, document_mask=True, multiple_of=27)["cu_seqlens"], plain["cu_seqlens"])
    short = model_inputs(rows, document_mask=True, multiple_of=8, min_length=61)  # every zigzag chunk >= the halo
    assert short["input_ids"].shape == (1, 64) and short["cu_seqlens"].tolist() == [0, 5, 6, 15, 27, 64]
    assert torch.equal(short["input_ids"][:, :27], plain["input_ids"])


def test_recipes_with_cp_keep_document_masking():
    assert load_recipe("tiny", ["parallel.cp=2"]).data.document_mask is True
    recipe = load_recipe("midtrain-128k")
    assert recipe.parallel.cp == 8 and recipe.data.document_mask is True


def _short_documents(path, seed: int) -> str:
    """A JSONL source of snippets of this package's code, 1 to 120 characters long: rows of 64 tokens pack
    several documents, which cross the zigzag chunks, and rarely fill up exactly."""
    rng = random.Random(seed)
    text = Path(iquest_core.__file__).with_name("cli.py").read_text()
    starts = [rng.randrange(len(text) - 120) for _ in range(400)]
    write_jsonl(path, [{"text": text[s:s + rng.randint(1, 120)]} for s in starts])
    return f'data.sources=[{{path="{path}", kind="jsonl"}}]'


def test_cp2_with_document_mask_equals_dp1(tmp_path):
    torch.set_num_threads(1)
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"documents drawn with seed {seed}")  # shown when the test fails
    source = _short_documents(tmp_path / "docs.jsonl", seed)
    recipe = small_recipe("seed=12", *LR, source)
    assert recipe.data.document_mask is True
    train(recipe, tmp_path / "dp1")
    spawn(2, train, small_recipe("seed=12", *LR, source, "parallel.cp=2"), tmp_path / "cp2")
    assert_same_run(tmp_path / "dp1", tmp_path / "cp2")
