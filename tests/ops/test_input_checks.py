"""Bad input raises ValueError naming the argument and what was expected."""

import pytest
import torch

from iquest_core.ops import attention_with_lse, loop_attention
from tests.helpers import CPU_DTYPES, CUDA_ONLY, supported_dtypes, supported_head_dims

B, L, H, HKV, D = 2, 10, 4, 2, 16


def good():
    q = torch.randn(B, L, H, D)
    kvs = [torch.randn(B, L, HKV, D) for _ in range(4)]
    return dict(q=q, k_global=kvs[0], v_global=kvs[1], k_local=kvs[2], v_local=kvs[3],
                gate_weight=torch.randn(H, D), gate_bias=torch.randn(H))


def call(**overrides):
    args = good()
    kwargs = {k: overrides.pop(k) for k in ("window", "scale", "cu_seqlens", "max_seqlen") if k in overrides}
    args.update(overrides)
    return loop_attention(*args.values(), **kwargs)


BAD = [
    (dict(q=torch.randn(L, H, D)), r"q: expected a 4-D tensor \(B, L, H, D\).*needs cu_seqlens"),
    (dict(q=torch.randn(B, L, H)), r"q: expected a 4-D"),
    (dict(k_global=torch.randn(B, L, 3, D), v_global=torch.randn(B, L, 3, D), k_local=torch.randn(B, L, 3, D),
          v_local=torch.randn(B, L, 3, D)), r"k_global: expected a number of KV heads dividing the 4"),
    (dict(v_local=torch.randn(B, L, HKV, D + 1)), r"v_local: expected shape \(B, Lk, Hkv, D\) with B=2 and D=16"),
    (dict(k_local=torch.randn(B, L + 1, HKV, D)), r"k_local: expected shape .* like k_global"),
    (dict(k_global=torch.randn(B, L + 1, HKV, D), v_global=torch.randn(B, L + 1, HKV, D),
          k_local=torch.randn(B, L + 1, HKV, D), v_local=torch.randn(B, L + 1, HKV, D)), r"k_global: expected the "
     r"query length L=10"),
    (dict(v_global=torch.randn(B, L, HKV, D, dtype=torch.float64)), r"v_global: expected dtype torch.float32"),
    (dict(q=torch.randn(B, L, H, D, dtype=torch.float64)), r"q: expected dtype torch.float32 or torch.bfloat16"),
    (dict(gate_weight=torch.randn(H, D + 1)), r"gate_weight: expected shape \(H, D\) = \(4, 16\)"),
    (dict(gate_bias=torch.randn(H, 1)), r"gate_bias: expected shape \(H,\) = \(4,\)"),
    (dict(gate_bias=torch.randn(H, dtype=torch.float64)), r"gate_bias: expected dtype torch.float32"),
    (dict(window=0), r"window: expected an int >= 1, got 0"),
    (dict(window=2.5), r"window: expected an int >= 1"),
    (dict(scale=-1.0), r"scale: expected a positive float"),
    (dict(q=[1.0]), r"q: expected a torch.Tensor, got list"),
    (dict(q=torch.randn(B, L, H, 300), gate_weight=torch.randn(H, 300)), r"v_global|k_global|q: expected"),
    (dict(max_seqlen=5), r"max_seqlen: only meaningful with cu_seqlens"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_input_names_the_argument(overrides, message):
    with pytest.raises(ValueError, match=message):
        call(**overrides)


def test_head_dim_above_256_is_refused():
    q = torch.randn(1, 4, 2, 300)
    kv = torch.randn(1, 4, 2, 300)
    with pytest.raises(ValueError, match=r"q: expected head_dim D in \[1, 256\], got 300"):
        loop_attention(q, kv, kv, kv, kv, torch.randn(2, 300), torch.randn(2))


def packed(cu_seqlens, **kwargs):
    args = {k: (v[0] if v.dim() == 4 else v) for k, v in good().items()}
    return loop_attention(*args.values(), cu_seqlens=cu_seqlens, **kwargs)


@pytest.mark.parametrize("cu_seqlens,message", [
    (torch.tensor([0, 6, 4, 10], dtype=torch.int32), r"cu_seqlens: expected non-decreasing offsets, got 6 then 4"),
    (torch.tensor([0, 4, 9], dtype=torch.int32), r"cu_seqlens: expected the last offset to equal the number of "
     r"tokens 10, got 9"),
    (torch.tensor([1, 4, 10], dtype=torch.int32), r"cu_seqlens: expected \[0, ...\]"),
    (torch.tensor([0, 4, 10], dtype=torch.int64), r"cu_seqlens: expected dtype torch.int32"),
    (torch.tensor([10], dtype=torch.int32), r"cu_seqlens: expected a 1-D int32 tensor \(num_docs \+ 1,\)"),
])
def test_bad_cu_seqlens(cu_seqlens, message):
    with pytest.raises(ValueError, match=message):
        packed(cu_seqlens)


def test_max_seqlen_shorter_than_a_document_is_refused():
    with pytest.raises(ValueError, match=r"max_seqlen: expected at least the longest sequence in cu_seqlens \(6\)"):
        packed(torch.tensor([0, 4, 10], dtype=torch.int32), max_seqlen=5)


def test_mixed_devices_are_refused():
    meta = torch.randn(H, D, device="meta")
    with pytest.raises(ValueError, match=r"gate_weight: expected device cpu like q, got meta"):
        call(gate_weight=meta)


@pytest.mark.parametrize("kwargs,message", [
    (dict(window=0), r"window: expected an int >= 1 or None, got 0"),
    (dict(q_start=-1), r"q_start: expected a non-negative int"),
    (dict(k_start=1.5), r"k_start: expected a non-negative int"),
])
def test_attention_with_lse_bad_arguments(kwargs, message):
    q, k = torch.randn(1, 4, 2, 8), torch.randn(1, 6, 1, 8)
    with pytest.raises(ValueError, match=message):
        attention_with_lse(q, k, k, **kwargs)


def test_attention_with_lse_k_v_mismatch():
    q, k = torch.randn(1, 4, 2, 8), torch.randn(1, 6, 1, 8)
    with pytest.raises(ValueError, match=r"v: expected shape .* like k"):
        attention_with_lse(q, k, torch.randn(1, 5, 1, 8))


def _call_op(op, q, kv):
    if op == "loop_attention":
        heads, head_dim = q.shape[-2], q.shape[-1]
        weight, bias = torch.randn(heads, head_dim, device=q.device), torch.randn(heads, device=q.device)
        return loop_attention(q, kv, kv, kv, kv, weight.to(q.dtype), bias.to(q.dtype))
    return attention_with_lse(q, kv, kv)


# What the CUDA kernels refuse (FlashAttention-like): every dtype the CPU takes but CUDA does not, and head
# dims the CPU takes but CUDA does not.
CUDA_REFUSED = [
    *[pytest.param(dtype, 64, r"q: the CUDA attention kernels take bfloat16 or float16, got", id=str(dtype))
      for dtype in CPU_DTYPES if dtype not in supported_dtypes("cuda")],
    *[pytest.param(dtype, head_dim, rf"q: the CUDA attention kernels support head_dim D = 64 or 128, got {head_dim}",
                   id=f"{dtype}-D{head_dim}")
      for dtype in supported_dtypes("cuda") for head_dim in (32, 80, 256)],
]


@pytest.mark.parametrize("dtype,head_dim,message", CUDA_REFUSED)
@pytest.mark.parametrize("op", ["loop_attention", "attention_with_lse"])
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_refuses_unsupported_dtype_or_head_dim(device, op, dtype, head_dim, message):
    assert dtype not in supported_dtypes(device) or head_dim not in supported_head_dims(device)
    q = torch.randn(1, 20, 2, head_dim, device=device).to(dtype)
    kv = torch.randn(1, 20, 1, head_dim, device=device).to(dtype)
    with pytest.raises(ValueError, match=message):
        _call_op(op, q, kv)


def test_cuda_refusals_cover_float32_and_other_head_dims():
    """The parametrisation above is not empty: float32 and head_dim 80 are among the refused configurations."""
    assert torch.float32 in [p.values[0] for p in CUDA_REFUSED]
    assert 80 in [p.values[1] for p in CUDA_REFUSED]
