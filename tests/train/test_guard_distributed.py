"""The SDC guard in FSDP/HSDP jobs (2 gloo ranks on the CPU): a guarded HSDP run ends where an unguarded
single process does; a bit flipped in one rank's gradient shard after the reduce is seen in that step by
every rank (replica check, that rank named) and the trainer redoes the step; a fault in one rank's live
step only is caught by the replay on every rank, without a hang; a fault that recurs stops the run."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from iquest_core.reliability.faults import flip_bit
from iquest_core.train.trainer import Trainer, train

from tests.ranks import spawn

from .helpers import assert_same_run, small_recipe

RECIPE = ("seed=14", "optim.lr=3e-3", "optim.eps=1e-5")  # eps: see test_distributed.LR
TIMEOUT = 60  # seconds a collective may wait: a rank that runs on alone fails the test instead of hanging it


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An unguarded single-process run of the same recipe."""
    torch.set_num_threads(1)
    output = tmp_path_factory.mktemp("dp1")
    train(small_recipe(*RECIPE), output)
    return output


def _train_with_fault(recipe, output, rank, step, bits, results):
    """Trains; on `rank`, run k of step `step`'s closure (k = 0: the first; replays and redos count) flips
    bit bits[k] of an element of the first parameter's local gradient shard, after the gradient reduce
    and clipping. results[r] = (the errors the trainer recovered from, the error that stopped it or None),
    each as (kind, step, rank, tensor, persistent)."""
    runs, current, errors = {}, [], []
    original_step, original_clip, original_recover = Trainer.train_step, Trainer._clip, Trainer._recover

    def train_step(self, s):
        current[:] = [s]
        return original_step(self, s)

    def clip(self):
        norm = original_clip(self)
        run = runs[current[0]] = runs.get(current[0], -1) + 1
        if dist.get_rank() == rank and current[0] == step and run < len(bits):
            grad = next(self.model.parameters()).grad.to_local()
            flip_bit(grad, grad.numel() // 2, bits[run])
        return norm

    def recover(self, error):
        errors.append(_fields(error))
        return original_recover(self, error)

    Trainer.train_step, Trainer._clip, Trainer._recover = train_step, clip, recover
    try:
        train(recipe, output)
        stopped = None
    except Exception as e:  # noqa: BLE001 - the test compares what every rank raised
        stopped = _fields(e)
    results[dist.get_rank()] = (errors[:-1] if stopped else errors, stopped)


def _fields(error):
    return (error.kind, error.step, error.rank, error.tensor, error.persistent) if hasattr(error, "kind") else repr(error)


def _run(output, overrides, rank=1, step=1, bits=(), world=2, recipe=RECIPE):
    results = mp.Manager().dict()
    spawn(world, _train_with_fault, small_recipe(*recipe, *overrides), output, rank, step, bits, results,
          timeout=TIMEOUT)
    return [results[r] for r in range(world)]


def _events(output):
    return [json.loads(line) for line in (output / "sdc.jsonl").read_text().splitlines()]


GRAD = "model.embed_tokens.weight.grad"


def test_a_guarded_hsdp_run_equals_an_unguarded_process(reference, tmp_path):
    assert _run(tmp_path, ["parallel.replicate=2", "guard.check_every=2"]) == [([], None)] * 2
    assert_same_run(reference, tmp_path)
    assert not (tmp_path / "sdc.jsonl").exists()


def test_a_flip_in_one_replica_is_caught_in_its_step_by_every_rank_and_the_step_is_redone(reference, tmp_path):
    reports = _run(tmp_path, ["parallel.replicate=2", "guard.check_every=1"], bits=(21,))
    assert reports == [([("replica", 1, 1, GRAD, None)], None)] * 2
    assert [(e["step"], e["action"]) for e in _events(tmp_path)] == [(2, "redo from step 2")]
    assert [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]
    assert_same_run(reference, tmp_path)


def test_a_fault_in_one_ranks_live_step_is_caught_by_the_replay_on_every_rank(reference, tmp_path):
    reports = _run(tmp_path, ["parallel.replicate=1", "guard.check_every=2"], bits=(21,))
    assert reports == [([("replay", 1, 1, GRAD, False)], None)] * 2
    assert [e["action"] for e in _events(tmp_path)] == ["redo from step 1"]  # the window began at step 1
    assert_same_run(reference, tmp_path)


def test_a_fault_that_strikes_the_same_step_again_stops_the_run(tmp_path):
    reports = _run(tmp_path, ["parallel.replicate=2", "guard.check_every=1"], bits=tuple(range(16, 28)))
    assert reports == [([("replica", 1, 1, GRAD, None)], ("replica", 1, 1, GRAD, None))] * 2
    assert [e["action"] for e in _events(tmp_path)] == ["redo from step 2", "stop"]
    assert [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())] == [1]
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").glob("step-*"))


@pytest.mark.slow  # 4 ranks (16 s); the 2-rank tests above make the same claims with shard groups of one rank
def test_hsdp_with_context_parallelism_recovers_from_a_replica_flip(tmp_path):
    recipe = ("seed=12", "optim.lr=3e-3", "optim.eps=1e-5", "data.document_mask=false")  # as test_dp2_cp2_equals_dp1
    train(small_recipe(*recipe), tmp_path / "dp1")
    overrides = ["parallel.replicate=2", "parallel.cp=2", "guard.check_every=2"]
    reports = _run(tmp_path / "hsdp", overrides, bits=(21,), world=4, recipe=recipe)
    assert reports == [([("replica", 1, 1, GRAD, None)], None)] * 4
    assert_same_run(tmp_path / "dp1", tmp_path / "hsdp")
