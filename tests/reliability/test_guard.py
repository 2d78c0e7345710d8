"""SDCGuard: clean guarded steps equal unguarded ones bitwise; a transient fault in a step, a flip at
rest and a replica that diverges are caught, named, and rolled back to the last verified state; with
check_every=N a fault is caught at the window's check; a fault that recurs identically is not."""

import copy

import pytest
import torch

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import flip_bit
from iquest_core.reliability.guard import SDCGuard
from iquest_core.reliability.state import optimizer_tensors
from tests.reliability.models import small_model


def replicas(n=1, seed=0):
    torch.manual_seed(seed)
    model = small_model()
    models = [model] + [copy.deepcopy(model) for _ in range(n - 1)]
    return models, [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]


def state(models, optimizers):
    """Every replica's parameters, buffers and optimizer state, cloned."""
    return [([t.detach().clone() for t in [*m.parameters(), *m.buffers()]],
             {k: v.clone() for k, v in optimizer_tensors(o).items()}) for m, o in zip(models, optimizers)]


def same_state(a, b):
    return all(len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb)) and oa.keys() == ob.keys()
               and all(torch.equal(oa[k], ob[k]) for k in oa) for (ta, oa), (tb, ob) in zip(a, b))


class Steps:
    """step_fn factory: forward + backward on every replica (its own rows; dropout draws from the RNG,
    batch norm updates buffers), mean all-reduce; `corrupt(run, models)` runs after the all-reduce of
    every execution of the step it is given to (run counts that step's executions)."""

    def __init__(self, models):
        self.models = models

    def __call__(self, x, corrupt=None):
        runs = []

        def step():
            losses = []
            for model, rows in zip(self.models, x.chunk(len(self.models))):
                loss = model(rows).square().mean()
                loss.backward()
                losses.append(loss.detach())
            for params in zip(*(m.parameters() for m in self.models)):
                mean = torch.stack([p.grad for p in params]).mean(0)
                for p in params:
                    p.grad.copy_(mean)
            if corrupt is not None:
                corrupt(len(runs), self.models)
            runs.append(None)
            return torch.stack(losses)
        return step


def flip_grad(replica=0, bit=30, runs=(0,)):
    def corrupt(run, models):
        if run in runs:
            flip_bit(models[replica][4].weight.grad, 3, bit)
    return corrupt


@pytest.mark.parametrize("check_every,n", [(1, 1), (3, 1), (1, 2)])
def test_clean_guarded_steps_equal_unguarded_ones(check_every, n):
    models, optimizers = replicas(n)
    plain_models = copy.deepcopy(models)
    plain_optimizers = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in plain_models]
    guard = SDCGuard(models, optimizers, check_every=check_every)
    steps, plain_steps = Steps(models), Steps(plain_models)
    for i in range(5):
        x, seed = torch.randn(16, 8), torch.randint(2**31, ()).item()
        torch.manual_seed(seed)
        loss = guard.step(steps(x))
        after_guard = torch.rand(3)
        torch.manual_seed(seed)
        expected = plain_steps(x)()
        for o, m in zip(plain_optimizers, plain_models):
            o.step()
            m.zero_grad(set_to_none=True)
        assert torch.equal(torch.rand(3), after_guard), "the RNG must end where one run leaves it"
        assert torch.equal(loss, expected)
        assert same_state(state(models, optimizers), state(plain_models, plain_optimizers)), f"step {i}"
        assert all(p.grad is None for m in models for p in m.parameters())
    assert guard.step_count == 5 and guard.verified_step == 5 - 5 % check_every


def test_a_transient_fault_is_caught_in_its_step_and_rolled_back():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    guard.step(steps(torch.randn(16, 8)))
    verified, rng = state(models, optimizers), torch.get_rng_state()
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(steps(torch.randn(16, 8), flip_grad(bit=12)))
    e = caught.value
    assert (e.step, e.tensor, e.rank, e.kind, e.persistent) == (1, "4.weight.grad", 0, "replay", False)
    assert same_state(state(models, optimizers), verified), "the corrupted update must not survive"
    assert torch.equal(torch.get_rng_state(), rng) and guard.step_count == guard.verified_step == 1
    guard.step(steps(torch.randn(16, 8)))  # training goes on from the verified state


def test_a_fault_that_differs_between_runs_is_persistent():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)

    def corrupt(run, models):
        flip_bit(models[0][0].bias.grad, 0, (5, 9, 13)[run])

    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(steps(torch.randn(16, 8), corrupt))
    assert caught.value.persistent is True and caught.value.tensor == "0.bias.grad"


def test_a_fault_recurring_identically_is_invisible_to_the_replay():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    clean_models = copy.deepcopy(models)
    guard.step(steps(torch.randn(16, 8), flip_grad(bit=29, runs=range(9))))
    assert not all(torch.equal(p, q) for p, q in zip(models[0].parameters(), clean_models[0].parameters()))


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_with_check_every_n_a_fault_is_caught_at_the_check_and_named(offset):
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers, check_every=3), Steps(models)
    verified = state(models, optimizers)
    for i in range(2):
        guard.step(steps(torch.randn(16, 8), flip_grad() if i == offset else None))
    assert guard.verified_step == 0
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(steps(torch.randn(16, 8), flip_grad() if offset == 2 else None))
    assert (caught.value.step, caught.value.kind) == (offset, "replay")
    assert same_state(state(models, optimizers), verified) and guard.step_count == 0


def test_verify_checks_the_pending_window_early():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers, check_every=5), Steps(models)
    guard.verify()  # nothing pending: nothing to do
    verified = state(models, optimizers)
    guard.step(steps(torch.randn(16, 8), flip_grad()))
    guard.step(steps(torch.randn(16, 8)))
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.verify()
    assert (caught.value.step, caught.value.kind, caught.value.persistent) == (0, "replay", False)
    assert same_state(state(models, optimizers), verified) and guard.step_count == 0
    guard.step(steps(torch.randn(16, 8)))
    guard.verify()
    assert guard.verified_step == guard.step_count == 1


@pytest.mark.parametrize("target", ["param", "optimizer"])
def test_a_flip_at_rest_is_caught_before_the_next_step_reads_it(target):
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    guard.step(steps(torch.randn(16, 8)))
    verified = state(models, optimizers)
    tensor, name = ((models[0][4].bias.detach(), "4.bias") if target == "param" else
                    (optimizers[0].state[models[0][0].weight]["exp_avg_sq"], "optimizer.state.0.exp_avg_sq"))
    flip_bit(tensor, 1, 22)
    calls = []
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(lambda: calls.append(1))
    assert (caught.value.step, caught.value.tensor, caught.value.kind) == (1, name, "at_rest")
    assert not calls, "the step must not run on corrupted state"
    assert same_state(state(models, optimizers), verified)


def test_a_diverging_replica_is_named_before_any_optimizer_runs():
    models, optimizers = replicas(3)
    guard, steps = SDCGuard(models, optimizers, check_every=2**30), Steps(models)
    verified = state(models, optimizers)
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(steps(torch.randn(18, 8), flip_grad(replica=2, bit=3)))
    assert (caught.value.tensor, caught.value.rank, caught.value.kind) == ("4.weight.grad", 2, "replica")
    assert same_state(state(models, optimizers), verified)


def test_a_corrupted_snapshot_is_refused_on_rollback():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    guard.step(steps(torch.randn(16, 8)))
    flip_bit(guard._snapshot.state.params[0][0], 0, 3)
    with pytest.raises(RuntimeError, match="snapshot itself is corrupted"):
        guard.step(steps(torch.randn(16, 8), flip_grad()))


def test_step_fn_must_return_the_loss_and_give_every_gradient():
    models, optimizers = replicas()
    guard = SDCGuard(models, optimizers)
    with pytest.raises(ValueError, match="step_fn"):
        guard.step(lambda: None)
    with pytest.raises(ValueError, match="step_fn.*0.weight"):
        guard.step(lambda: torch.zeros(()))


@pytest.mark.parametrize("args,kwargs,match", [
    (("model", None), {}, "models"),
    ((None, "adam"), {}, "optimizers"),
    ((None, None), {"check_every": 0}, "check_every"),
    ((None, None), {"check_every": 1.5}, "check_every"),
])
def test_bad_arguments_name_themselves(args, kwargs, match):
    models, optimizers = replicas()
    args = (models if args[0] is None else args[0], optimizers if args[1] is None else args[1])
    with pytest.raises(ValueError, match=match):
        SDCGuard(*args, **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_guard_on_cuda():
    models, optimizers = replicas()
    models[0].cuda()
    optimizers = [torch.optim.Adam(models[0].parameters(), lr=1e-2)]
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    guard.step(steps(torch.randn(16, 8, device="cuda")))
    with pytest.raises(SilentDataCorruptionError) as caught:
        guard.step(steps(torch.randn(16, 8, device="cuda"), flip_grad()))
    assert caught.value.tensor == "4.weight.grad" and caught.value.persistent is False


def test_reset_adopts_the_current_state():
    models, optimizers = replicas()
    guard, steps = SDCGuard(models, optimizers), Steps(models)
    guard.step(steps(torch.randn(16, 8)))
    with torch.no_grad():
        models[0][0].weight.mul_(0.5)  # e.g. a checkpoint loaded into the model
    guard.reset()
    adopted = state(models, optimizers)
    guard.step(steps(torch.randn(16, 8)))  # no at-rest error
    with pytest.raises(SilentDataCorruptionError):
        guard.step(steps(torch.randn(16, 8), flip_grad()))
    assert guard.verified_step == 2 and not same_state(state(models, optimizers), adopted)
