"""Zigzag sharding of a sequence over a context-parallel group.

The sequence is cut into 2 * cp equal chunks; rank r keeps chunks r and 2cp-1-r, concatenated in that
order. Under a causal mask this gives every rank the same amount of attention work. Positions stay
global (RoPE uses zigzag_positions)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def _chunk_len(length: int, cp: int, what: str) -> int:
    if length % (2 * cp) != 0:
        raise ValueError(f"{what}: expected a sequence length divisible by 2 * cp = {2 * cp}, got {length}")
    return length // (2 * cp)


def zigzag_chunks(rank: int, cp: int) -> tuple[int, int]:
    """The two chunk indices (of 2 * cp) that rank holds, in local order."""
    return rank, 2 * cp - 1 - rank


def zigzag_shard(x: torch.Tensor, group: dist.ProcessGroup | None = None, dim: int = 1) -> torch.Tensor:
    """This rank's zigzag shard of the full-sequence tensor x (sequence along dim)."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    _chunk_len(x.shape[dim], cp, "x")
    chunks = x.chunk(2 * cp, dim=dim)
    first, second = zigzag_chunks(rank, cp)
    return torch.cat([chunks[first], chunks[second]], dim=dim)


def zigzag_unshard(x: torch.Tensor, group: dist.ProcessGroup | None = None, dim: int = 1) -> torch.Tensor:
    """Inverse of zigzag_shard: all-gathers the shards and restores sequence order (no autograd)."""
    cp = dist.get_world_size(group)
    shards = [torch.empty_like(x) for _ in range(cp)]
    dist.all_gather(shards, x.contiguous(), group=group)
    chunks: list[torch.Tensor | None] = [None] * (2 * cp)
    for rank, shard in enumerate(shards):
        first, second = zigzag_chunks(rank, cp)
        chunks[first], chunks[second] = shard.chunk(2, dim=dim)
    return torch.cat(chunks, dim=dim)


def zigzag_positions(length: int, group: dist.ProcessGroup | None = None, device=None) -> torch.Tensor:
    """Global positions (2 * length / (2 * cp),) of this rank's tokens, in local order."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    chunk = _chunk_len(length, cp, "length")
    first, second = zigzag_chunks(rank, cp)
    return torch.cat([torch.arange(c * chunk, (c + 1) * chunk, device=device) for c in (first, second)])
