"""The evaluations' shared decoding: batches of equal-length prompts give exactly the texts each prompt
gives decoded alone, in input order."""

from __future__ import annotations

import pytest

from iquest_core.eval import common


def test_batched_greedy_equals_one_prompt_at_a_time(tiny_model_dir):
    model, tokenizer = common.load_model(tiny_model_dir)
    texts = ["def add(a, b):\n", "def sub(a, b):\n", "import os\n", "x = 1\n", "def mul(a, b):\n"]
    prompts = [tokenizer.encode(t) for t in texts]
    assert len({len(p) for p in prompts}) < len(prompts)  # some share a length: they are batched together
    eos = common.stop_ids(model, tokenizer, ["<|im_end|>"])
    calls = []
    generate = model.generate
    model.generate = lambda ids, *a, **k: calls.append(ids.shape[0]) or generate(ids, *a, **k)
    batched = common.greedy_batches(model, tokenizer, prompts, max_new_tokens=8, eos=eos, batch_size=4)
    assert max(calls) > 1 and len(calls) < len(prompts)
    calls.clear()
    alone = [common.greedy_batches(model, tokenizer, [p], max_new_tokens=8, eos=eos)[0] for p in prompts]
    assert batched == alone and any(batched)
    stopped = common.greedy_batches(model, tokenizer, prompts, max_new_tokens=8, eos=eos, stop=lambda t: len(t) > 0)
    assert all(0 < len(s) < len(b) for s, b in zip(stopped, batched))  # ended after the first visible text


def test_load_model_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match="--model: "):
        common.load_model(tmp_path / "missing")
