"""Ring attention with packed documents (cu_seqlens) on 2 and 4 gloo CPU ranks equals the single-process
packed ops and float64 references, in outputs and all gradients; the block planning covers exactly the
visible (query, key) pairs of every block."""

import bisect
import os
import random

import pytest
import torch
import torch.distributed as dist

from iquest_core.ops import attention_with_lse, loop_attention
from iquest_core.ops.reference import attention_with_lse_reference, loop_attention_reference
from iquest_core.parallel import ring_attention, ring_loop_attention, zigzag_shard, zigzag_unshard
from iquest_core.parallel.documents import block_calls

from tests.ranks import run_on_ranks

TOL = 1e-5

# (H, Hkv, D, window, document lengths); the length, a multiple of 8, suits cp = 2 and cp = 4
DOC_CASES = [
    (4, 2, 16, 8, [1, 30, 5, 3, 57]),  # one-token and shorter-than-window documents, one over 5 chunks at cp=4
    (3, 1, 8, 13, [13, 26, 13, 52]),  # boundaries on chunk starts (cp=4: chunks of 13), a halo of 12 keys
    (2, 2, 8, 1, [7, 1, 1, 79]),  # window 1: the local branch sees each token alone
    (4, 1, 8, 6, [48]),  # one document: the same blocks as without cu_seqlens
]


def _random_lengths(rng: random.Random, total: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, total), rng.randint(1, min(8, total - 1))))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def _cu(lengths):
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


def _rel_err(actual, expected):
    scale = expected.abs().max().item()
    return (actual.double() - expected.double()).abs().max().item() / (scale if scale > 1e-4 else 1.0)


def _float64_attention(q, k, v, cu_seqlens):
    """Causal attention inside each document, document by document, in float64: out (1, T, H, D)."""
    bounds = cu_seqlens.tolist()
    docs = [attention_with_lse_reference(q[:, a:b], k[:, a:b], v[:, a:b])[0] for a, b in zip(bounds[:-1], bounds[1:])]
    return torch.cat(docs, dim=1)


def _compare(name, ring_out, ring_leaves, references, grad_out, errors):
    """Errors of the ring's unsharded output and gradients against each (output, leaves) reference."""
    for ref_name, (expected, leaves) in references.items():
        grads = torch.autograd.grad(expected, leaves, grad_out.to(expected.dtype))
        errors[f"{name}/{ref_name}/out"] = _rel_err(zigzag_unshard(ring_out.detach()), expected.detach())
        for i, (shard, grad) in enumerate(zip(ring_leaves, grads)):
            got = zigzag_unshard(shard.grad) if shard.dim() > 2 else _all_reduced(shard.grad)
            errors[f"{name}/{ref_name}/grad{i}"] = _rel_err(got, grad)


def _all_reduced(grad):
    total = grad.clone()
    dist.all_reduce(total)  # the trainer's gradient reduction over the context group
    return total


def _check_case(case, seed):
    heads, kv_heads, head_dim, window, lengths = case
    gen = torch.Generator().manual_seed(seed)
    length, cu_seqlens = sum(lengths), _cu(lengths)
    q = torch.randn(1, length, heads, head_dim, generator=gen)
    kvs = [torch.randn(1, length, kv_heads, head_dim, generator=gen) for _ in range(4)]
    gate = [torch.randn(heads, head_dim, generator=gen) * head_dim**-0.5, torch.randn(heads, generator=gen)]
    grad_out = torch.randn(q.shape, generator=gen)
    errors = {}

    shards = [zigzag_shard(t).requires_grad_() for t in (q, *kvs[:2])]
    out = ring_attention(*shards, cu_seqlens=cu_seqlens)
    out.backward(zigzag_shard(grad_out))
    fp32 = [t.clone().requires_grad_() for t in (q, *kvs[:2])]
    fp64 = [t.double().requires_grad_() for t in (q, *kvs[:2])]
    references = {"op": (attention_with_lse(*(t[0] for t in fp32), cu_seqlens=cu_seqlens)[0][None], fp32),
                  "float64": (_float64_attention(*fp64, cu_seqlens), fp64)}
    _compare("causal", out, shards, references, grad_out, errors)

    shards = [zigzag_shard(t).requires_grad_() for t in (q, *kvs)] + [t.clone().requires_grad_() for t in gate]
    out = ring_loop_attention(*shards, window=window, cu_seqlens=cu_seqlens)
    out.backward(zigzag_shard(grad_out))
    fp32 = [t.clone().requires_grad_() for t in (q, *kvs, *gate)]
    fp64 = [t.double().requires_grad_() for t in (q, *kvs, *gate)]
    packed = lambda leaves: [t[0] for t in leaves[:5]] + leaves[5:]  # noqa: E731
    references = {"op": (loop_attention(*packed(fp32), window=window, cu_seqlens=cu_seqlens)[None], fp32),
                  "float64": (loop_attention_reference(*packed(fp64), window=window, cu_seqlens=cu_seqlens)[None],
                              fp64)}
    _compare("loop", out, shards, references, grad_out, errors)
    return errors


def _check_cases(seed):
    cases = [*DOC_CASES, (4, 2, 8, 5, _random_lengths(random.Random(seed), 80))]
    return {f"{case}": _check_case(case, seed + i) for i, case in enumerate(cases)}


@pytest.mark.parametrize("world_size", [2, 4])
def test_ring_with_documents_matches_the_packed_ops(world_size):
    seed = int.from_bytes(os.urandom(4), "little")
    for rank, report in run_on_ranks(world_size, _check_cases, seed).items():
        assert len(report) == len(DOC_CASES) + 1
        for case, errors in report.items():
            assert len(errors) == 2 * (4 + 8)  # two references x (out + 3 grads, out + 7 grads)
            for name, err in errors.items():
                assert err <= TOL, (seed, rank, case, name, err)


def _planned_pairs(q0, k0, calls, window):
    """(query, key) absolute positions the calls let attend, each call read by its own rules; also checks
    that no two calls share a query row."""
    pairs, rows = set(), set()
    for call in calls:
        q_rows, k_rows = range(*call.q_rows), range(*call.k_rows)
        assert rows.isdisjoint(q_rows)
        rows.update(q_rows)
        for i in q_rows:
            for j in k_rows:
                if call.cu_seqlens is None:
                    assert (call.q_start, call.k_start) == (q0 + call.q_rows[0], k0 + call.k_rows[0])
                    qp, kp, same_doc = call.q_start + i - call.q_rows[0], call.k_start + j - call.k_rows[0], True
                else:
                    li, lj = i - call.q_rows[0], j - call.k_rows[0]
                    pieces = call.cu_seqlens
                    same_doc = bisect.bisect_right(pieces, li) == bisect.bisect_right(pieces, lj)
                    qp, kp = li, lj
                    assert call.max_seqlen == max(b - a for a, b in zip(pieces[:-1], pieces[1:]))
                if same_doc and kp <= qp and (window is None or qp - window < kp):
                    pairs.add((q0 + i, k0 + j))
    return pairs


def _visible_pairs(q0, q1, k0, k1, bounds, window):
    doc = lambda p: bisect.bisect_right(bounds, p) if bounds is not None else 0  # noqa: E731
    return {(i, j) for i in range(q0, q1) for j in range(k0, k1)
            if j <= i and (window is None or i - window < j) and doc(i) == doc(j)}


def test_block_calls_cover_exactly_the_visible_pairs():
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    for _ in range(300):
        total = rng.randint(8, 60)
        c = rng.randint(1, total // 2)
        lengths = _random_lengths(rng, total) if rng.random() < 0.8 else [total]
        bounds = tuple(_cu(lengths).tolist()) if rng.random() < 0.9 else None
        q0 = rng.randint(0, total - c)
        if rng.random() < 0.5 and q0 >= c:  # an off-diagonal block: keys all before the queries
            k0 = rng.randint(0, q0 - c)
            k1, window = k0 + c, None
        else:  # a chunk over itself with a halo before it
            k0, k1 = q0 - rng.randint(0, q0), q0 + c
            window = rng.choice([None, rng.randint(1, c + 1)])
        calls = block_calls(q0, q0 + c, k0, k1, bounds)
        assert _planned_pairs(q0, k0, calls, window) == _visible_pairs(q0, q0 + c, k0, k1, bounds, window), \
            (q0, c, k0, k1, bounds, window, calls)
        if bounds is not None and len(bounds) == 2:  # one document: the calls of no documents
            assert calls == block_calls(q0, q0 + c, k0, k1, None)
