"""Parallelism over torch.distributed: zigzag sequence sharding and ring (context-parallel) attention."""

from iquest_core.parallel.ring_attention import ring_attention, ring_loop_attention
from iquest_core.parallel.zigzag import zigzag_positions, zigzag_shard, zigzag_unshard

__all__ = ["ring_attention", "ring_loop_attention", "zigzag_positions", "zigzag_shard", "zigzag_unshard"]
