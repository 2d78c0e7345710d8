"""apply_cp installs the ring backend from outside the model (one in-process rank here; 2 ranks in
test_model_context_parallel.py)."""

import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.model.backends import LocalAttention
from iquest_core.parallel import apply_cp, ring_attention
from iquest_core.parallel.context_parallel import RingAttention


@pytest.fixture
def group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield dist.group.WORLD
    dist.destroy_process_group()


def _model():
    torch.manual_seed(0)
    return LoopCoderForCausalLM(LoopCoderConfig.preset("tiny", loop_num=2, loop_window_size=8)).eval()


def test_one_rank_ring_equals_the_local_model(group):
    model = _model()
    ids = torch.randint(0, model.config.vocab_size, (2, 38))
    expected = model(ids).logits
    assert apply_cp(model, group) is model
    backends = {type(layer.self_attn.backend) for layer in model.model.layers}
    assert backends == {RingAttention}
    torch.testing.assert_close(model(ids).logits, expected, rtol=1e-5, atol=1e-5)


def test_one_rank_ring_runs_packed_documents_like_the_local_model(group):
    model = _model()
    ids = torch.randint(0, model.config.vocab_size, (1, 38))
    cu_seqlens = torch.tensor([0, 1, 16, 19, 38], dtype=torch.int32)
    expected = model(ids, cu_seqlens=cu_seqlens).logits
    apply_cp(model, group)
    torch.testing.assert_close(model(ids, cu_seqlens=cu_seqlens).logits, expected, rtol=1e-5, atol=1e-5)


def test_ring_backend_refuses_caches_and_bad_document_boundaries(group):
    model = apply_cp(_model(), group)
    ids = torch.randint(0, model.config.vocab_size, (1, 14))
    with pytest.raises(ValueError, match="cache: context parallelism runs whole sequences"):
        model(ids, cache=model.new_cache())
    with pytest.raises(ValueError, match="cu_seqlens: expected document boundaries of the whole sequence, from 0 "
                                         "to its length 14"):
        model(ids, cu_seqlens=torch.tensor([0, 4, 12], dtype=torch.int32))
    with pytest.raises(ValueError, match="cu_seqlens: expected strictly increasing boundaries"):
        model(ids, cu_seqlens=torch.tensor([0, 9, 4, 14], dtype=torch.int32))
    with pytest.raises(ValueError, match="cu_seqlens: expected strictly increasing boundaries"):
        model(ids, cu_seqlens=torch.tensor([0, 4, 4, 14], dtype=torch.int32))


def test_ring_functions_refuse_bad_document_boundaries(group):
    q, k, v = torch.randn(1, 10, 2, 8), torch.randn(1, 10, 1, 8), torch.randn(1, 10, 1, 8)
    bad = {"cu_seqlens: expected dtype torch.int32": torch.tensor([0, 10]),
           r"cu_seqlens: expected a 1-D int32 tensor \(num_docs \+ 1,\), got shape \(1,\)": torch.tensor([10]).int(),
           "cu_seqlens: expected document boundaries of the whole sequence, from 0 to its length 10": torch.tensor(
               [1, 10], dtype=torch.int32),
           "cu_seqlens: expected strictly increasing": torch.tensor([0, 6, 6, 10], dtype=torch.int32)}
    for message, cu_seqlens in bad.items():
        with pytest.raises(ValueError, match=message):
            ring_attention(q, k, v, group=group, cu_seqlens=cu_seqlens)
    with pytest.raises(ValueError, match=r"q: packed documents \(cu_seqlens\) need batch size 1"):
        ring_attention(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1), group=group,
                       cu_seqlens=torch.tensor([0, 10], dtype=torch.int32))


def test_bad_arguments_are_refused(group):
    model = _model()
    with pytest.raises(ValueError, match="cp_group: expected a torch.distributed ProcessGroup"):
        apply_cp(model, None)
    with pytest.raises(ValueError, match="model: expected a module containing LoopCoderAttention"):
        apply_cp(torch.nn.Linear(2, 2), group)
    assert all(isinstance(layer.self_attn.backend, LocalAttention) for layer in model.model.layers)


def test_the_model_package_imports_nothing_distributed():
    code = "import sys, iquest_core.model; print(sorted(m for m in sys.modules if m.startswith('iquest_core.parallel')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
