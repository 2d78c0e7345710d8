"""Parallelism over torch.distributed: zigzag sequence sharding, ring (context-parallel) attention and
`apply_cp`, which installs it in a model from outside."""

from iquest_core.parallel.context_parallel import apply_cp
from iquest_core.parallel.ring_attention import ring_attention, ring_loop_attention
from iquest_core.parallel.zigzag import zigzag_positions, zigzag_shard, zigzag_unshard

__all__ = ["apply_cp", "ring_attention", "ring_loop_attention", "zigzag_positions", "zigzag_shard", "zigzag_unshard"]
