"""Fused gated loop attention against what a user would run otherwise, B=1, H=8, D=128, W=64; forward and
forward+backward; fp32, bf16:
  unfused         two scaled_dot_product_attention calls + gate mix (iquest_core.ops.reference): the
                  window branch as an L x L masked SDPA, as inference engines without a sliding-window
                  kernel run it;
  unfused_banded  the same, with the window branch banded, O(L*W) (ops.reference.loop_attention_banded): queries in blocks of W, each block's
                  SDPA over its W + W - 1 keys under a local mask (what a sliding-window flash kernel
                  computes; the best unfused path a user could write);
  sdpa_causal     one causal SDPA call on the same q/k/v (the floor: the fused op does that work plus the
                  window branch and the gate).
The banded baseline is checked against the fused op before it is timed."""

import pytest
import torch
import torch.nn.functional as F

from iquest_core.ops import loop_attention
from iquest_core.ops.reference import loop_attention_banded, loop_attention_reference

B, H, D, W = 1, 8, 128, 64


def causal_sdpa(q, k_global, v_global, *unused):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k_global.transpose(1, 2), v_global.transpose(1, 2),
                                          is_causal=True, enable_gqa=True).transpose(1, 2)


IMPLS = {
    "fused": lambda *a: loop_attention(*a, window=W),
    "unfused": lambda *a: loop_attention_reference(*a, window=W),
    "unfused_banded": lambda *a: loop_attention_banded(*a, window=W),
    "sdpa_causal": causal_sdpa,
}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("length", [1024, 4096])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
def test_loop_attention(benchmark, record_median, impl, length, dtype, mode):
    torch.manual_seed(0)
    train = mode == "fwd+bwd"
    inputs = [torch.randn(B, length, H, D, dtype=dtype) for _ in range(5)]
    inputs += [torch.randn(H, D, dtype=dtype) * D**-0.5, torch.zeros(H, dtype=dtype)]
    inputs = [t.requires_grad_(train) for t in inputs]
    fn = IMPLS[impl]
    grad_out = torch.randn(B, length, H, D, dtype=dtype)
    if impl == "unfused_banded":
        with torch.no_grad():
            tol = 1e-4 if dtype == torch.float32 else 3e-2
            torch.testing.assert_close(fn(*inputs).float(), loop_attention(*inputs, window=W).float(), rtol=tol,
                                       atol=tol)

    def step():
        out = fn(*inputs)
        if train:
            out.backward(grad_out)

    group = f"{mode} {str(dtype)[6:]} L={length}"
    benchmark.group = group
    rounds = 3 if length >= 4096 else 7
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1)
    record_median(group, impl, benchmark, subject=impl == "fused")
