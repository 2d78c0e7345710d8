"""A tiny untrained LoopCoder in the Hugging Face layout with a BPE tokenizer, shared by the evaluations'
end-to-end tests (what it generates is noise; the tests check the plumbing)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from iquest_core.data.tokenizer import train_tokenizer
    from iquest_core.eval import humaneval
    from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
    problems = humaneval.load_problems()
    tokenizer = train_tokenizer([p["prompt"] + p["canonical_solution"] for p in problems.values()], vocab_size=300)
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", vocab_size=tokenizer.vocab_size))
    directory = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(directory)
    tokenizer.save(directory)
    return directory
