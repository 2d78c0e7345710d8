"""Training-step throughput of a small LoopCoder on the CPU: the model on the fused gated loop attention
op against the same model (same weights, same data) on the two unfused compositions: "unfused" (two SDPA
calls, the window branch under an L x L mask, + gate mix, as inference engines run loop attention) and
"unfused_banded" (causal SDPA + the window branch banded in O(L*W) + gate mix, the best unfused
composition; ops.reference.loop_attention_banded). One step = iquest_core.train.step.train_step
(forward, cross-entropy, backward, AdamW update, no clipping) on one row of L byte tokens; preset
"small-cpu" (hidden 256, 4 heads of 64, 2 KV heads, 2 layers x 2 loops, window 64), float32. tokens/s = L / median step time (in extra_info and printed)."""

import pytest
import torch

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.train.step import train_step

IMPLS = {"fused": "fused", "unfused": "reference", "unfused_banded": "banded"}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("length", [2048, 4096])
def test_training_step(benchmark, record_median, impl, length):
    torch.manual_seed(0)
    model = LoopCoderForCausalLM(LoopCoderConfig.preset("small-cpu"), attn_implementation=IMPLS[impl])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, model.config.vocab_size, (1, length + 1))

    def step():
        train_step(model, optimizer, tokens[:, :-1], tokens[:, 1:], max_grad_norm=None)

    group = f"train step fp32 L={length}"
    benchmark.group = group
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    tokens_per_s = length / benchmark.stats.stats.median
    benchmark.extra_info["tokens_per_s"] = tokens_per_s
    print(f"\n{group} {impl}: {tokens_per_s:.0f} tokens/s")
    record_median(group, impl, benchmark, subject=impl == "fused")
