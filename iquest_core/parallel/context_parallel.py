"""Context parallelism applied to a model from outside: `apply_cp(model, group)` replaces every
LoopCoder attention backend by the ring backend, the way torchtitan's parallelize functions work;
the model file knows nothing about it."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from iquest_core.model.attention import LoopCoderAttention
from iquest_core.model.backends import AttentionBackend, AttentionMetadata
from iquest_core.parallel.ring_attention import ring_attention, ring_loop_attention
from iquest_core.parallel.zigzag import zigzag_positions


class RingAttention(AttentionBackend):
    """Attention of this rank's zigzag shard over the whole sequence, spread over `group`: ring attention
    in loop 1, ring loop attention after. Whole unpacked sequences only (no cu_seqlens, no cache);
    default positions are the shard's global ones."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group

    def check(self, meta: AttentionMetadata) -> None:
        if meta.cu_seqlens is not None or meta.cache is not None:
            raise ValueError("cp_group: context parallelism runs whole unpacked sequences (no cu_seqlens or cache)")

    def positions(self, length: int, device: torch.device) -> torch.Tensor:
        return zigzag_positions(length * dist.get_world_size(self.group), self.group, device=device)

    def causal(self, q, k, v, meta, layer):
        return ring_attention(q, k, v, group=self.group)

    def gated(self, q, k_global, v_global, k, v, gate_weight, gate_bias, *, window, loop, meta, layer):
        return ring_loop_attention(q, k_global, v_global, k, v, gate_weight, gate_bias, group=self.group,
                                   window=window)


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
