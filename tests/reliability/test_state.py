"""fingerprint_module / fingerprint_optimizer: names, and digests that follow the tensors."""

import pytest
import torch

from iquest_core.reliability import fingerprint
from iquest_core.reliability.faults import flip_bit
from iquest_core.reliability.state import digests_of, fingerprint_module, fingerprint_optimizer, same_bits
from tests.reliability.models import small_model, step_fn


def trained():
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters())
    step_fn(model, torch.randn(8, 8))()
    optimizer.step()
    return model, optimizer


def test_module_names_and_digests():
    model, _ = trained()
    digests = fingerprint_module(model)
    params = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers()]
    assert list(digests) == [k for n in params for k in (n, f"{n}.grad")] + buffers
    assert torch.equal(digests["4.weight.grad"], fingerprint(model[4].weight.grad))
    assert list(fingerprint_module(model, params=False, buffers=False)) == [f"{n}.grad" for n in params]


def test_module_digest_follows_a_flipped_bit():
    model, _ = trained()
    before = fingerprint_module(model)
    flip_bit(model[0].weight.grad, torch.randint(128, ()).item(), torch.randint(32, ()).item())
    after = fingerprint_module(model)
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["0.weight.grad"]


def test_optimizer_state_names_and_digests():
    model, optimizer = trained()
    digests = fingerprint_optimizer(optimizer)
    assert set(digests) == {f"state.{i}.{k}" for i in range(6) for k in ("step", "exp_avg", "exp_avg_sq")}
    assert torch.equal(digests["state.2.exp_avg"], fingerprint(optimizer.state[model[1].weight]["exp_avg"]))


def test_digests_of_equals_fingerprint_of_each(device):
    tensors = [torch.randn(3), torch.randn(5, device=device), torch.randn(2)]
    digests = digests_of(tensors)
    assert digests.device.type == "cpu"
    assert torch.equal(digests, torch.stack([fingerprint(t).cpu() for t in tensors]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="model"):
        fingerprint_module(torch.zeros(1))
    with pytest.raises(ValueError, match="optimizer"):
        fingerprint_optimizer(small_model())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_same_bits_is_bitwise_equality(dtype):
    tensors = [torch.randn(5, 3).to(dtype), torch.randn(7).to(dtype)[::2], torch.tensor(3.0).to(dtype)]
    copies = [t.clone() for t in tensors]
    assert same_bits(tensors, copies)
    flip_bit(copies[1], 2, 0)  # the lowest bit of one element of a strided view
    assert not same_bits(tensors, copies)
    flip_bit(copies[1], 2, 0)
    assert same_bits(tensors, copies)
    assert not same_bits(tensors, copies[:2]) and not same_bits(tensors, [c.to(torch.float64) for c in copies])
    assert not same_bits(tensors, [copies[0].T, *copies[1:]])


def test_same_bits_is_not_float_equality():
    """torch.equal on the values would call these the other way round."""
    nan = torch.tensor([1.0, float("nan")])
    assert same_bits([nan], [nan.clone()]) and not torch.equal(nan, nan.clone())
    assert not same_bits([torch.tensor([0.0])], [torch.tensor([-0.0])]) and torch.equal(torch.tensor([0.0]),
                                                                                      torch.tensor([-0.0]))
