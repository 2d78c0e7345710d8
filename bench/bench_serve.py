"""`iquest serve` throughput: continuous batching against sequential calls, on the CPU.

A random LoopCoder (preset small-cpu: hidden 256, 2 layers x 2 loops, window 64; vocab 320) is served
in-process (EmbeddedServer, max_batch 16). Each round sends the same 16 completion requests (greedy,
64 new tokens each, `ignore` of eos not available, so usage's completion_tokens is what counts):

- sequential: one request at a time through the server (what a client loop does);
- concurrent-4 / concurrent-16: that many requests in flight (the engine batches them per step);
- generate: model.generate for each prompt alone, no server (the floor for sequential).

Figures: the round's median time, and tokens/s in extra_info. Not asserted.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from iquest_core.data.tokenizer import load_tokenizer
from iquest_core.model import LoopCoderForCausalLM
from iquest_core.serve.client import ChatClient
from iquest_core.serve.server import EmbeddedServer
from tests.serve.conftest import write_tiny_export

PROMPTS = [f"def function_{i}(values):\n    total = {i}\n" for i in range(16)]
NEW_TOKENS = 64
GROUP = "serve: 16 requests x 64 tokens"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    export = write_tiny_export(tmp_path_factory.mktemp("small-export"), preset="small-cpu")
    with EmbeddedServer(export, max_batch=16) as server, ChatClient(server.url, server.model_name, concurrency=16) as c:
        yield export, server, c


def _round(client, concurrency, tokens):
    def one(prompt):
        body = client._send("POST", "/completions", {"model": client.model, "prompt": prompt, "max_tokens": NEW_TOKENS,
                                                      "temperature": 0}, None, lambda b: b["usage"])
        return body["completion_tokens"]
    with ThreadPoolExecutor(concurrency) as pool:
        tokens.append(sum(pool.map(one, PROMPTS)))


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_serve_throughput(benchmark, served, record_median, concurrency):
    _, server, client = served
    tokens = []
    benchmark.group = GROUP
    benchmark.pedantic(_round, args=(client, concurrency, tokens), rounds=3, iterations=1, warmup_rounds=1)
    name = "sequential" if concurrency == 1 else f"concurrent-{concurrency}"
    record_median(GROUP, name, benchmark, subject=concurrency == 16)
    benchmark.extra_info["tokens_per_s"] = tokens[-1] / benchmark.stats.stats.median
    benchmark.extra_info["max_rows_per_step"] = server.engine.stats.max_rows


def test_generate_floor(benchmark, served, record_median):
    export = served[0]
    tokenizer = load_tokenizer(export)
    model = LoopCoderForCausalLM.from_pretrained(export, dtype=torch.float32)
    ids = [torch.tensor([tokenizer.encode(p)]) for p in PROMPTS]
    benchmark.group = GROUP
    benchmark.pedantic(lambda: [model.generate(x, NEW_TOKENS, eos_token_id=[]) for x in ids], rounds=3, iterations=1,
                       warmup_rounds=1)
    record_median(GROUP, "generate", benchmark)
    benchmark.extra_info["tokens_per_s"] = len(PROMPTS) * NEW_TOKENS / benchmark.stats.stats.median
