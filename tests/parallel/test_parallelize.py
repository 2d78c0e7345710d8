"""parallelize applies its parts from outside the model: activation checkpointing keeps the gradients and
the parameter names and saves less for backward; compile and dtype on a single process."""

import torch
import torch.nn.functional as F

from iquest_core.parallel.parallelize import ParallelConfig, parallelize
from tests.helpers import max_err
from tests.model.conftest import make_model


def test_activation_checkpointing_same_gradients_less_saved_memory_same_names():
    ids = torch.randint(0, 128, (2, 40))
    results = []
    for enabled in (False, True):
        model = make_model()
        parallelize(model, None, ParallelConfig(activation_checkpointing=enabled))
        saved_bytes = 0

        def pack(t):
            nonlocal saved_bytes
            saved_bytes += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(ids).logits
        F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
        results.append((saved_bytes, [p.grad for p in model.parameters()]))
        assert [n for n, _ in model.named_parameters()] == [n for n, _ in make_model().named_parameters()]
    (plain_bytes, plain_grads), (ckpt_bytes, ckpt_grads) = results
    assert ckpt_bytes < plain_bytes / 2
    for plain, ckpt in zip(plain_grads, ckpt_grads):
        assert max_err(plain, ckpt) <= 1e-6


def test_single_process_dtype_and_compile():
    ids = torch.randint(0, 128, (1, 24))
    reference = make_model()(ids).logits
    model = parallelize(make_model(), None, ParallelConfig(compile=True, param_dtype=torch.bfloat16))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert max_err(model(ids).logits.float(), reference) <= 0.1
