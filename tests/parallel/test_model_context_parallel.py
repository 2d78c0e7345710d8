"""The LoopCoder model with a cp=2 context-parallel group gives the loss and gradients of cp=1, on whole
rows and on a row of packed documents (cu_seqlens)."""

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.parallel import apply_cp, zigzag_shard, zigzag_unshard

from tests.ranks import run_on_ranks

WORLD = 2
LENGTH = 96  # 4 zigzag chunks of 24 tokens >= window - 1


def _loss(model, input_ids, labels, total_tokens, **kwargs):
    logits = model(input_ids, **kwargs).logits
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum") / total_tokens
    return loss, logits.detach()


def _inputs(vocab_size, packed):
    """input_ids, labels and the model's keyword arguments: 2 whole rows, or one row of packed documents
    (one of a single token) whose last tokens have no target."""
    if not packed:
        input_ids = torch.randint(0, vocab_size, (2, LENGTH))
        return input_ids, torch.cat([input_ids[:, 1:], torch.full((2, 1), -100)], dim=1), {}
    cuts = sorted(torch.randperm(LENGTH - 2)[:5].add(2).tolist())
    cu_seqlens = torch.tensor([0, 1, *cuts, LENGTH], dtype=torch.int32)
    input_ids = torch.randint(0, vocab_size, (1, LENGTH))
    labels = torch.cat([input_ids[:, 1:], torch.full((1, 1), -100)], dim=1)
    labels[0, cu_seqlens[1:] - 1] = -100
    return input_ids, labels, {"cu_seqlens": cu_seqlens}


def _errors(seed, packed):
    """Relative errors of the cp=2 loss, logits and summed gradients against one process's."""
    torch.manual_seed(seed)
    config = LoopCoderConfig.preset("tiny", loop_num=2, loop_window_size=16)
    model = LoopCoderForCausalLM(config)
    input_ids, labels, kwargs = _inputs(config.vocab_size, packed)
    total = int((labels != -100).sum())

    full_loss, full_logits = _loss(model, input_ids, labels, total, **kwargs)
    full_loss.backward()
    full_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    apply_cp(model, dist.group.WORLD)
    cp_loss, cp_logits = _loss(model, zigzag_shard(input_ids), zigzag_shard(labels), total, **kwargs)
    cp_loss.backward()
    loss_sum = cp_loss.detach().clone()
    dist.all_reduce(loss_sum)
    errors = {"loss": abs(loss_sum.item() - full_loss.item()) / abs(full_loss.item()),
              "logits": ((zigzag_unshard(cp_logits) - full_logits).abs().max() / full_logits.abs().max()).item()}
    for name, p in model.named_parameters():
        grad = p.grad.clone()
        dist.all_reduce(grad)  # the trainer's gradient reduction over the context group
        errors[name] = ((grad - full_grads[name]).abs().max() / full_grads[name].abs().max()).item()
    return errors


@pytest.mark.parametrize("packed", [False, True], ids=["rows", "packed-documents"])
def test_model_with_cp2_matches_single_process(packed):
    seed = torch.randint(0, 2**31, ()).item()
    for rank, errors in run_on_ranks(WORLD, _errors, seed, packed).items():
        assert "model.gate_projections.0.weight" in errors and "logits" in errors
        for name, err in errors.items():
            assert err <= 1e-5, (rank, name, err)
