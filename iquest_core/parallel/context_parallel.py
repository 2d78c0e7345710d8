"""Context parallelism applied to a model from outside: `apply_cp(model, group)` replaces every
LoopCoder attention backend by the ring backend, the way torchtitan's parallelize functions work;
the model file knows nothing about it."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from iquest_core.model.attention import LoopCoderAttention
from iquest_core.model.backends import AttentionBackend, AttentionMetadata, packed_position_ids
from iquest_core.parallel.ring_attention import ring_attention, ring_loop_attention
from iquest_core.parallel.zigzag import zigzag_positions, zigzag_shard


class RingAttention(AttentionBackend):
    """Attention of this rank's zigzag shard over the whole sequence, spread over `group`: ring attention
    in loop 1, ring loop attention after. Packed documents: B = 1 and cu_seqlens of the whole sequence
    (cp * L tokens; max_seqlen is not needed). No decode cache. Default positions are the shard's global
    ones, restarting per document with cu_seqlens."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group

    def check(self, meta: AttentionMetadata) -> None:
        if meta.cache is not None:
            raise ValueError("cache: context parallelism runs whole sequences (no incremental decoding)")

    def positions(self, length: int, device: torch.device, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        total = length * dist.get_world_size(self.group)
        if cu_seqlens is None:
            return zigzag_positions(total, self.group, device=device)
        return zigzag_shard(packed_position_ids(cu_seqlens, total), self.group, dim=0)

    def causal(self, q, k, v, meta, layer):
        return ring_attention(q, k, v, group=self.group, cu_seqlens=meta.host_cu_seqlens)

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        return ring_loop_attention(q, k_global, v_global, k, v, gate_weight, gate_bias, group=self.group,
                                   window=window, cu_seqlens=meta.host_cu_seqlens)


def apply_cp(model: nn.Module, cp_group: dist.ProcessGroup) -> nn.Module:
    """Installs the ring backend in every LoopCoderAttention of `model` (in place; returns model). The
    model then takes this rank's zigzag shards (iquest_core.parallel.zigzag_shard) of sequences of
    cp * L tokens and returns the shard's outputs; parameters are untouched (their gradients are this
    rank's contributions, summed by the trainer's reduction over the context group)."""
    if not isinstance(cp_group, dist.ProcessGroup):
        raise ValueError(f"cp_group: expected a torch.distributed ProcessGroup, got {type(cp_group).__name__}")
    attentions = [m for m in model.modules() if isinstance(m, LoopCoderAttention)]
    if not attentions:
        raise ValueError(f"model: expected a module containing LoopCoderAttention layers, got {type(model).__name__}")
    backend = RingAttention(cp_group)
    for attention in attentions:
        attention.backend = backend
    return model
