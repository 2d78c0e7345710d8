"""FSDP2 over gloo ranks: dp=2, dp=2 x cp=2 and HSDP (dp=2 as 2 replicas) train the same global batches
as one process and end at the same parameters and logged metrics (loss, grad_norm, lr, token counts; 1e-5)."""

import shutil

import pytest
import torch
from torch.distributed.tensor import Replicate, Shard

from iquest_core.train.export import load_checkpoint_model
from iquest_core.train.trainer import Trainer, train

from tests.ranks import spawn

from .helpers import assert_same_run, losses, small_recipe

TOL = 1e-5
# Adam's update g / (sqrt(v) + eps) of a gradient entry that nearly cancels (|g| << eps) is lr * g / eps, so
# the summation-order rounding of such entries, which is large relative to them, is amplified by lr / eps.
# eps = 1e-5 keeps that well below TOL (at eps = 1e-6 it reached 1.7e-5 in the embedding of some seeds).
LR = ("optim.lr=3e-3", "optim.eps=1e-5")


def _train(recipe, output):
    train(recipe, output)


def test_dp2_equals_dp1(tmp_path):
    torch.set_num_threads(1)
    recipe = small_recipe("seed=11", *LR)
    train(recipe, tmp_path / "dp1")
    spawn(2, _train, recipe, tmp_path / "dp2")
    assert_same_run(tmp_path / "dp1", tmp_path / "dp2")


def _train_hsdp(recipe, output):
    trainer = Trainer(recipe, output)
    for p in trainer.model.parameters():  # replicated over the replicate dim, sharded over the other
        assert p.device_mesh.mesh_dim_names == ("replicate", "shard_cp") and p.placements == (Replicate(), Shard(0))
    trainer.run()


def test_dp2_hsdp_replicate2_equals_dp1(tmp_path):
    torch.set_num_threads(1)
    recipe = small_recipe("seed=13", *LR)
    train(recipe, tmp_path / "dp1")
    spawn(2, _train_hsdp, small_recipe("seed=13", *LR, "parallel.replicate=2"), tmp_path / "hsdp")
    assert_same_run(tmp_path / "dp1", tmp_path / "hsdp")


def test_dp2_cp2_equals_dp1(tmp_path):
    torch.set_num_threads(1)
    recipe = small_recipe("seed=12", *LR, "data.document_mask=false")
    train(recipe, tmp_path / "dp1")
    spawn(4, _train, small_recipe("seed=12", *LR, "data.document_mask=false", "parallel.cp=2"), tmp_path / "dp2cp2")
    assert_same_run(tmp_path / "dp1", tmp_path / "dp2cp2")


def _train_until_crash(recipe, output):
    original = Trainer.train_step

    def crash_at_step_2(self, step):
        if step == 2:
            raise KeyboardInterrupt("simulated crash")
        return original(self, step)

    Trainer.train_step = crash_at_step_2
    try:
        train(recipe, output)
    except KeyboardInterrupt:
        pass
    finally:
        Trainer.train_step = original


def _resume(recipe, output):
    train(recipe, output, resume=True)


@pytest.mark.slow  # test_trainer's single-process resume test covers the claim in a fraction of the time
def test_dp2_resume_equals_uninterrupted_and_reshards_to_dp1(tmp_path):
    torch.set_num_threads(1)
    recipe = small_recipe("steps=4", "checkpoint_every=2", *LR)
    spawn(2, _train, recipe, tmp_path / "whole")
    spawn(2, _train_until_crash, recipe, tmp_path / "cut")
    shutil.copytree(tmp_path / "cut", tmp_path / "cut-dp1")
    spawn(2, _resume, recipe, tmp_path / "cut")
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    whole = load_checkpoint_model(tmp_path / "whole" / "checkpoints" / "step-4").state_dict()
    cut = load_checkpoint_model(tmp_path / "cut" / "checkpoints" / "step-4").state_dict()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    train(recipe, tmp_path / "cut-dp1", resume=True)  # the dp=2 checkpoint read by one process
    a, b = losses(tmp_path / "cut-dp1"), losses(tmp_path / "whole")
    assert a[:2] == b[:2] and max(abs(x - y) / abs(y) for x, y in zip(a, b)) <= TOL
