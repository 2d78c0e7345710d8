"""Ring (context-parallel) attention on 2 and 4 gloo CPU ranks equals the single-process ops."""

import os

import pytest
import torch
import torch.distributed as dist

from iquest_core.ops import attention_with_lse, loop_attention
from iquest_core.parallel import ring_attention, ring_loop_attention, zigzag_positions, zigzag_shard, zigzag_unshard

from tests.ranks import run_on_ranks

LOOP_CASES = [
    # (B, L, H, Hkv, D, window)
    (1, 512, 4, 2, 32, 64),
    (2, 264, 3, 1, 16, 1),
    (1, 520, 5, 5, 24, 65),
]


def _rel_err(actual, expected):
    """Relative max error; absolute where the expected tensor vanishes (e.g. dK of window 1, where each
    query's softmax has a single key and its gradient is zero up to rounding)."""
    scale = expected.abs().max().item()
    return (actual - expected).abs().max().item() / (scale if scale > 1e-4 else 1.0)


def _check_loop_case(case, seed):
    batch, length, heads, kv_heads, head_dim, window = case
    gen = torch.Generator().manual_seed(seed)
    full = [torch.randn(batch, length, heads, head_dim, generator=gen)]
    full += [torch.randn(batch, length, kv_heads, head_dim, generator=gen) for _ in range(4)]
    gate = [torch.randn(heads, head_dim, generator=gen) * head_dim**-0.5, torch.randn(heads, generator=gen)]
    grad_out = torch.randn(batch, length, heads, head_dim, generator=gen)

    leaves = [t.clone().requires_grad_() for t in full + gate]
    expected = loop_attention(*leaves, window=window)
    expected.backward(grad_out)

    shards = [zigzag_shard(t).requires_grad_() for t in full]
    gate_leaves = [t.clone().requires_grad_() for t in gate]
    out = ring_loop_attention(*shards, *gate_leaves, window=window)
    out.backward(zigzag_shard(grad_out))
    errors = {"out": _rel_err(zigzag_unshard(out.detach()), expected.detach())}
    for name, shard, leaf in zip(("q", "k_global", "v_global", "k_local", "v_local"), shards, leaves):
        errors[name] = _rel_err(zigzag_unshard(shard.grad), leaf.grad)
    for name, leaf, full_leaf in zip(("gate_weight", "gate_bias"), gate_leaves, leaves[5:]):
        total = leaf.grad.clone()
        dist.all_reduce(total)  # the trainer's gradient reduction over the context group
        errors[name] = _rel_err(total, full_leaf.grad)
    return errors


def _check_plain_case(seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 256, 4, 32, generator=gen)
    k, v = torch.randn(2, 256, 2, 32, generator=gen), torch.randn(2, 256, 2, 32, generator=gen)
    grad_out = torch.randn(q.shape, generator=gen)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected, _ = attention_with_lse(*leaves)
    expected.backward(grad_out)
    shards = [zigzag_shard(t).requires_grad_() for t in (q, k, v)]
    out = ring_attention(*shards)
    out.backward(zigzag_shard(grad_out))
    errors = {"out": _rel_err(zigzag_unshard(out.detach()), expected.detach())}
    for name, shard, leaf in zip("qkv", shards, leaves):
        errors[name] = _rel_err(zigzag_unshard(shard.grad), leaf.grad)
    return errors


def _check_cases(seed):
    report = {"plain": _check_plain_case(seed)}
    for i, case in enumerate(LOOP_CASES):
        report[f"loop{case}"] = _check_loop_case(case, seed + i)
    report["positions"] = zigzag_positions(16).tolist()
    return report


@pytest.mark.parametrize("world_size", [2, 4])
def test_ring_matches_single_process(world_size):
    seed = int.from_bytes(os.urandom(4), "little")
    results = run_on_ranks(world_size, _check_cases, seed)
    for rank, report in results.items():
        for case, errors in report.items():
            if case == "positions":
                continue
            for name, err in errors.items():
                assert err <= 1e-5, (rank, case, name, err)
    chunk = 16 // (2 * world_size)
    seen = sorted(p for report in results.values() for p in report["positions"])
    assert seen == list(range(16))
    assert results[0]["positions"][:chunk] == list(range(chunk))
    assert results[0]["positions"][chunk:] == list(range(16 - chunk, 16))
