"""Document masking inside the blocks of ring attention: which slices of a block attend to each other
when the sequence packs several documents (cu_seqlens of the whole, unsharded sequence).

A block is the queries at absolute positions [q0, q1) against the keys at [k0, k1), in one of two shapes:
the keys end with the queries (k1 = q1, k0 <= q0: a chunk over itself, with a halo of keys before it in
the window branch) or they all precede the queries (k1 <= q0: an off-diagonal ring block). A block is
run as attention_with_lse calls (`BlockCall`) on disjoint query rows; rows outside every call see no key.

- Without documents: one call over the whole block, at the block's absolute positions.
- With documents, key j is visible to query i only inside i's document. The document that starts
  before q0 (if it reaches the keys) gets one dense call: its queries in the block against its keys in
  [k0, k1). When the keys end with the queries, the remaining query rows get one packed call over
  themselves: the documents clipped to the chunk, with local cu_seqlens (positions restart per piece;
  causality and the window depend only on position differences, which clipping keeps), or a dense
  call when they are one document: a sequence of one document runs the calls of no documents.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from iquest_core.ops.input_checks import check_dtype, check_tensor


@dataclass(frozen=True)
class BlockCall:
    """One attention_with_lse call of a block: query rows q_rows = (lo, hi) of the query chunk against
    key rows k_rows of the block's keys. Dense: at positions q_start / k_start. Packed (cu_seqlens, local
    int offsets from 0 to the rows' length, and max_seqlen set): q_rows and k_rows have equal lengths
    and positions restart at 0 in every piece."""

    q_rows: tuple[int, int]
    k_rows: tuple[int, int]
    q_start: int = 0
    k_start: int = 0
    cu_seqlens: tuple[int, ...] | None = None
    max_seqlen: int | None = None


def host_bounds(cu_seqlens: torch.Tensor, total: int) -> tuple[int, ...]:
    """cu_seqlens (num_docs + 1,) int32 of the whole sequence of `total` tokens as host ints; ValueError
    naming cu_seqlens unless they run from 0 to total, strictly increasing (no empty documents)."""
    check_tensor("cu_seqlens", cu_seqlens)
    check_dtype("cu_seqlens", cu_seqlens, torch.int32)
    if cu_seqlens.dim() != 1 or cu_seqlens.shape[0] < 2:
        raise ValueError(f"cu_seqlens: expected a 1-D int32 tensor (num_docs + 1,), got shape "
                         f"{tuple(cu_seqlens.shape)}")
    bounds = tuple(cu_seqlens.tolist())
    if bounds[0] != 0 or bounds[-1] != total:
        raise ValueError(f"cu_seqlens: expected document boundaries of the whole sequence, from 0 to its length "
                         f"{total} (cp * the shard length), got {bounds[0]} .. {bounds[-1]}")
    if any(b <= a for a, b in zip(bounds[:-1], bounds[1:])):
        raise ValueError(f"cu_seqlens: expected strictly increasing boundaries (no empty documents), got "
                         f"{list(bounds)}")
    return bounds


def block_calls(q0: int, q1: int, k0: int, k1: int, bounds: tuple[int, ...] | None) -> list[BlockCall]:
    """The calls that run the block of queries [q0, q1) over keys [k0, k1) (absolute positions; k1 = q1
    with k0 <= q0, or k1 <= q0) under the document boundaries `bounds` (None: one sequence)."""
    if bounds is None:
        return [BlockCall((0, q1 - q0), (0, k1 - k0), q0, k0)]
    doc = bisect.bisect_right(bounds, q0) - 1
    start, end = bounds[doc], min(bounds[doc + 1], q1)  # the document holding q0, clipped to the queries
    calls = []
    if start < q0 and max(start, k0) < min(end, k1):  # it started before the queries and reaches the keys
        calls.append(BlockCall((0, end - q0), (max(start, k0) - k0, min(end, k1) - k0), q0, max(start, k0)))
        first = end
    else:
        first = q0
    if k1 == q1 and first < q1:
        local = tuple(b - first for b in (first, *(b for b in bounds if first < b < q1), q1))
        rows = (first - q0, q1 - q0), (first - k0, q1 - k0)
        if len(local) == 2:  # one document: a dense call, as without documents
            calls.append(BlockCall(*rows, first, first))
        else:
            calls.append(BlockCall(*rows, cu_seqlens=local, max_seqlen=max(b - a for a, b in zip(local, local[1:]))))
    return calls

