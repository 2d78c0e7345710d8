"""SDCGuard: clean steps pass and leave exactly the first run's results; injected faults in every
target are caught before the optimizer, named, and classified transient or persistent."""

import copy

import pytest
import torch

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import Fault, FaultInjector
from iquest_core.reliability.guard import RunHooks, SDCGuard
from tests.reliability.models import small_model, step_fn


class RunLog(RunHooks):
    """Records (step, run) of every run and the gradient objects each run produced."""

    def __init__(self, guard):
        self.runs, self.grads = [], {}
        self.guard = guard
        guard.hooks.append(self)

    def after_backward(self, step, run):
        self.runs.append((step, run))
        self.grads[(step, run)] = [p.grad for p in self.guard.model.parameters()]


def test_clean_check_steps_match_an_unguarded_run():
    model, x = small_model(), torch.randn(32, 8)
    plain = copy.deepcopy(model)
    guard = SDCGuard(model, check_every=1)
    log = RunLog(guard)
    deterministic = []

    def guarded_step():
        deterministic.append(torch.are_deterministic_algorithms_enabled())
        return step_fn(model, x)()

    for step in range(3):
        seed = torch.randint(2**31, ()).item()
        torch.manual_seed(seed)
        loss = guard.run(guarded_step)
        after_guard = torch.rand(4)
        torch.manual_seed(seed)
        plain.zero_grad(set_to_none=True)
        expected = step_fn(plain, x)()
        assert torch.equal(torch.rand(4), after_guard), "the RNG must end where one run leaves it"
        assert torch.equal(loss, expected)
        for (name, p), q in zip(model.named_parameters(), plain.parameters()):
            assert torch.equal(p.grad, q.grad), name
        for (name, b), c in zip(model.named_buffers(), plain.buffers()):
            assert torch.equal(b, c), name
        assert all(a is b for a, b in zip(log.grads[(step, 0)], [p.grad for p in model.parameters()]))
    assert log.runs == [(s, r) for s in range(3) for r in (0, 1)]
    assert deterministic == [True] * 6 and not torch.are_deterministic_algorithms_enabled()


def test_only_check_steps_replay():
    model, x = small_model(), torch.randn(16, 8)
    guard = SDCGuard(model, check_every=3)
    log = RunLog(guard)
    for _ in range(6):
        guard.run(step_fn(model, x))
    assert log.runs == [(0, 0), (0, 1), (1, 0), (2, 0), (3, 0), (3, 1), (4, 0), (5, 0)]
    names, digests = guard.last_digests
    assert names == ["loss"] + [f"{n}.grad" for n, _ in model.named_parameters()]
    assert digests.shape == (len(names), 2)


FAULTS = [
    pytest.param("param", "0.weight", "0.weight", id="param"),
    pytest.param("grad", "4.bias", "4.bias.grad", id="grad"),
    pytest.param("activation", "3", "3#1", id="activation"),
    pytest.param("optimizer", "state.0.exp_avg_sq", "optimizer.state.0.exp_avg_sq", id="optimizer"),
]


@pytest.mark.parametrize("target,name,reported", FAULTS)
@pytest.mark.parametrize("run", [0, 1])
def test_a_fault_in_one_run_is_caught_and_transient(target, name, reported, run):
    model, x = small_model(), torch.randn(16, 8)
    optimizer = torch.optim.Adam(model.parameters())
    guard = SDCGuard(model, optimizer=optimizer, activations=["1", "3"])
    injector = FaultInjector(guard)
    guard.run(step_fn(model, x))
    optimizer.step()
    params_before = [p.detach().clone() for p in model.parameters()]
    fault = Fault(target, name, index=1, bit=torch.randint(32, ()).item(), step=guard.step, run=run)
    injector.schedule(fault)
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.run(step_fn(model, x))
    e = caught.value
    assert (e.step, e.tensor, e.rank, e.kind, e.persistent) == (1, reported, 0, "replay", False)
    assert injector.applied == [fault] and not injector.pending
    assert all(p.grad is None for p in model.parameters()), "no gradient may survive a detected fault"
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params_before)), "flips are undone"
    guard.run(step_fn(model, x))  # the next step is clean again


def test_a_fault_in_both_replays_is_persistent():
    model, x = small_model(), torch.randn(16, 8)
    guard = SDCGuard(model)
    injector = FaultInjector(guard)
    for run, bit in [(1, 3), (2, 17)]:
        injector.schedule(Fault("grad", "0.weight", index=5, bit=bit, step=0, run=run))
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.run(step_fn(model, x))
    assert caught.value.persistent is True and caught.value.tensor == "0.weight.grad"


def test_faults_on_unchecked_steps_go_unseen_by_replay():
    model, x = small_model(), torch.randn(16, 8)
    guard = SDCGuard(model, check_every=2)
    injector = FaultInjector(guard)
    injector.schedule(Fault("grad", "0.bias", index=0, bit=30, step=1))
    guard.run(step_fn(model, x))
    guard.run(step_fn(model, x))  # step 1 is not a check step: nothing to compare with
    assert injector.applied
    injector.schedule(Fault("grad", "0.bias", index=0, bit=30, step=2))
    with pytest.raises(SilentDataCorruptionError):
        guard.run(step_fn(model, x))


def test_step_fn_must_return_the_loss():
    guard = SDCGuard(small_model())
    with pytest.raises(ValueError, match="step_fn"):
        guard.run(lambda: None)


@pytest.mark.parametrize("kwargs,match", [
    ({"check_every": 0}, "check_every"),
    ({"check_every": 1.5}, "check_every"),
    ({"activations": ["nope"]}, "activations"),
    ({"optimizer": "adam"}, "optimizer"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SDCGuard(small_model(), **kwargs)
    with pytest.raises(ValueError, match="model"):
        SDCGuard("model")


def test_close_removes_the_activation_hooks():
    model = small_model()
    guard = SDCGuard(model, activations=["1"])
    assert model[1]._forward_hooks
    guard.close()
    assert not model[1]._forward_hooks


def test_a_run_with_an_extra_tensor_is_a_difference():
    model, x = small_model(), torch.randn(16, 8)
    guard = SDCGuard(model)
    calls = []

    def step():  # the replay leaves one parameter without a gradient: a different set of checked tensors
        calls.append(1)
        loss = model(x).square().mean()
        loss.backward()
        if len(calls) > 1:
            model[4].bias.grad = None
        return loss

    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.run(step)
    assert caught.value.tensor == "4.bias.grad"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_guard_on_cuda():
    model, x = small_model().cuda(), torch.randn(16, 8, device="cuda")
    guard = SDCGuard(model, activations=["3"])
    injector = FaultInjector(guard)
    guard.run(step_fn(model, x))
    assert guard.last_digests[1].shape[1] == 2
    injector.schedule(Fault("grad", "0.weight", index=3, bit=12, step=1, run=1))
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.run(step_fn(model, x))
    assert caught.value.tensor == "0.weight.grad" and caught.value.persistent is False
