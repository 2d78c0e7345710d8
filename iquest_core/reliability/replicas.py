"""Cross-replica checks: after the data-parallel gradient all-reduce every replica must hold
bit-identical gradients (and parameters); the ranks exchange fingerprints and a rank that differs from
the majority is named."""

from __future__ import annotations

from collections import Counter

import torch
import torch.distributed as dist

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.state import digests_of, module_tensors


def compare_across_ranks(names: list[str], digests: torch.Tensor, *, step: int | None = None,
                         group: dist.ProcessGroup | None = None) -> None:
    """All ranks of `group` call this with the same names and their own (n, 2) digests (on a device the
    backend can gather: CPU for gloo, CUDA for NCCL). Returns if all ranks agree. Otherwise every rank
    raises the same SilentDataCorruptionError(kind="replica") naming the first differing tensor and the
    rank outside the majority (the lowest such rank if several; rank None when no digest has a
    majority, e.g. two replicas that disagree)."""
    if digests.dim() != 2 or digests.shape != (len(names), 2) or digests.dtype != torch.int64:
        raise ValueError(f"digests: expected int64 ({len(names)}, 2) (one row per name), got {digests.dtype} "
                         f"{tuple(digests.shape)}")
    verdict = replica_verdict(digests, group=group)
    if verdict is not None:
        first, bad, text = verdict
        raise SilentDataCorruptionError(f"replicas disagree after the all-reduce: {text}", step=step,
                                        tensor=names[first], rank=bad, kind="replica", persistent=None)


def replica_verdict(digests: torch.Tensor, *, group: dist.ProcessGroup | None = None) -> tuple[int, int | None, str] | None:
    """The verdict of compare_across_ranks without raising: None when the (n, 2) digests of all ranks of
    `group` agree, else (index of the first differing tensor, global rank outside the majority or None,
    a description), the same on every rank."""
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError("group: expected an initialised torch.distributed process group")
    world = dist.get_world_size(group)
    gathered = [torch.empty_like(digests) for _ in range(world)]
    dist.all_gather(gathered, digests.contiguous(), group=group)
    verdict = majority_verdict(torch.stack(gathered).cpu())
    if verdict is None:
        return None
    first, outliers, count = verdict
    group_ranks = dist.get_process_group_ranks(group) if group is not None else list(range(world))
    bad_global = group_ranks[outliers[0]] if len(outliers) < world else None
    return first, bad_global, describe(outliers, count, world, group_ranks)


def majority_verdict(table: torch.Tensor) -> tuple[int, list[int], int] | None:
    """table: (replicas, n, 2) digests. None if all replicas agree; else the index of the first tensor
    that differs, the replicas outside the majority for it (all of them when no digest has a majority)
    and the majority's size."""
    agree = (table == table[0]).all(dim=2).all(dim=0)
    if bool(agree.all()):
        return None
    first = int((~agree).nonzero()[0])
    votes = [tuple(row) for row in table[:, first].tolist()]
    value, count = Counter(votes).most_common(1)[0]
    if 2 * count <= len(votes):
        return first, list(range(len(votes))), count
    return first, [r for r, v in enumerate(votes) if v != value], count


def describe(outliers: list[int], count: int, world: int, ranks: list[int]) -> str:
    if len(outliers) == world:
        return f"no digest has a majority among {world} replicas"
    return f"ranks {[ranks[r] for r in outliers]} differ from the majority of {count} of {world}"


def check_replicas(model: torch.nn.Module, *, step: int | None = None, params: bool = False,
                   group: dist.ProcessGroup | None = None) -> None:
    """Compares the gradients (and with params=True the parameters) of `model` across the replicas of
    `group` (see compare_across_ranks). Call it after the gradient all-reduce, before the optimizer, on
    every rank; the model must be the same on all of them (data parallelism with replicated tensors:
    DDP, or the replicate group of HSDP)."""
    named = module_tensors(model, params=params, grads=True, buffers=False)
    compare_across_ranks(list(named), digests_of(list(named.values())), step=step, group=group)
