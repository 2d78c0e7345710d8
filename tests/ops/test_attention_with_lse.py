"""attention_with_lse: one block of causal/windowed attention with its log-sum-exp."""

import pytest
import torch

from iquest_core.ops import attention_with_lse
from iquest_core.ops.reference import attention_with_lse_reference
from tests.helpers import assert_rel_close, rel_err

CASES = [
    # (Lq, Lk, H, Hkv, D, q_start, k_start, window)
    pytest.param(1, 1, 2, 2, 32, 0, 0, None, id="one-token"),
    pytest.param(300, 300, 4, 2, 64, 0, 0, None, id="causal-gqa"),
    pytest.param(130, 200, 3, 1, 48, 200, 0, None, id="queries-after-keys"),
    pytest.param(130, 130, 2, 2, 64, 500, 400, 200, id="window-offsets"),
    pytest.param(77, 600, 2, 1, 128, 590, 20, 300, id="long-keys-window"),
]


def _inputs(lq, lk, heads, kv_heads, head_dim, device):
    q = torch.randn(2, lq, heads, head_dim, dtype=torch.float64, device=device)
    k = torch.randn(2, lk, kv_heads, head_dim, dtype=torch.float64, device=device)
    return q, k, torch.randn_like(k)


@pytest.mark.parametrize("lq,lk,heads,kv_heads,head_dim,q_start,k_start,window", CASES)
def test_out_lse_and_gradients_match_float64(device, lq, lk, heads, kv_heads, head_dim, q_start, k_start, window):
    q, k, v = _inputs(lq, lk, heads, kv_heads, head_dim, device)
    kwargs = dict(q_start=q_start, k_start=k_start, window=window)
    leaves64 = [t.clone().requires_grad_() for t in (q, k, v)]
    out64, lse64 = attention_with_lse_reference(*leaves64, **kwargs)
    grad_out, grad_lse = torch.randn_like(out64), torch.randn_like(lse64)
    (out64 * grad_out).sum().add((lse64 * grad_lse).sum()).backward()

    leaves = [t.float().requires_grad_() for t in (q, k, v)]
    out, lse = attention_with_lse(*leaves, **kwargs)
    assert lse.shape == (2, heads, lq) and lse.dtype == torch.float32
    assert rel_err(out, out64) <= 1e-5
    assert rel_err(lse, lse64) <= 1e-6
    (out * grad_out.float()).sum().add((lse * grad_lse.float()).sum()).backward()
    for name, leaf, leaf64 in zip("qkv", leaves, leaves64):
        assert_rel_close(leaf.grad, leaf64.grad, 1e-4, name)


def test_queries_that_see_no_key_give_zero_and_minus_inf(device):
    q, k, v = (t.float() for t in _inputs(8, 16, 2, 2, 32, device))
    out, lse = attention_with_lse(q, k, v, q_start=0, k_start=4)  # queries 0..3 precede every key
    assert torch.equal(out[:, :4], torch.zeros_like(out[:, :4]))
    assert torch.isneginf(lse[..., :4]).all() and torch.isfinite(lse[..., 4:]).all()


def test_blocks_merged_by_lse_equal_one_call(device):
    """Context parallelism's identity: attention over [K1; K2] = lse-weighted merge of the two blocks."""
    q, k, v = (t.float() for t in _inputs(96, 192, 4, 2, 64, device))
    full, full_lse = attention_with_lse(q, k, v, q_start=96)
    out1, lse1 = attention_with_lse(q, k[:, :100], v[:, :100], q_start=96)
    out2, lse2 = attention_with_lse(q, k[:, 100:], v[:, 100:], q_start=96, k_start=100)
    lse = torch.logaddexp(lse1, lse2)
    w1 = torch.exp(lse1 - lse).transpose(1, 2)[..., None]
    w2 = torch.exp(lse2 - lse).transpose(1, 2)[..., None]
    assert rel_err(lse, full_lse) <= 1e-6
    assert rel_err(w1 * out1 + w2 * out2, full) <= 1e-5


def test_opcheck(device):
    q, k, v = (t.float().requires_grad_() for t in _inputs(33, 40, 4, 2, 16, device))
    torch.library.opcheck(torch.ops.iquest.attention_with_lse.default, (q, k, v, 7, 0, 16, 0.25))
