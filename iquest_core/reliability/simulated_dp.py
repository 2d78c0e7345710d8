"""Data-parallel replicas simulated in one process, for fault drills: the gradient all-reduce is a ring
all-reduce written out message by message, so that one rank's contribution can be corrupted in transit
the way a faulty NIC, link or reduction buffer would corrupt it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iquest_core.reliability.faults import Hit, bit_field, flip_bit

PHASES = ("reduce_scatter", "all_gather")


@dataclass(frozen=True)
class MessageFault:
    """A bit flip in one message of the ring: the message `sender` sends at hop `hop` (0 <= hop < R-1) of
    `phase`, at the element at fraction `element` of the message, bit `bit` (of a float32)."""

    sender: int
    phase: str
    hop: int
    element: float
    bit: int


def ring_allreduce_mean(grads: list[list[torch.Tensor]], fault: MessageFault | None = None) -> Hit | None:
    """Replaces every replica's gradients by their mean over the R replicas, as a ring all-reduce does it.

    grads[r]: replica r's float32 gradients (the same shapes on every replica). Each replica divides its
    own by R, then R-1 reduce-scatter hops (rank r sends chunk (r - t) mod R of its flattened gradients
    to rank r+1, which adds it) and R-1 all-gather hops (rank r sends chunk (r + 1 - t) mod R, which
    rank r+1 copies). Every chunk is summed once, in ring order, so all replicas end bit-identical.
    A corrupted reduce-scatter message spreads to every replica; a corrupted all-gather message only
    to the ranks downstream of it. Returns where `fault` landed (None without one)."""
    world = len(grads)
    flat = [torch.cat([g.reshape(-1) for g in gs]).div_(world) for gs in grads]
    chunks = [list(f.tensor_split(world)) for f in flat]
    hit = None
    for phase in PHASES:
        for hop in range(world - 1):
            messages = []
            for rank in range(world):
                index = (rank - hop) % world if phase == "reduce_scatter" else (rank + 1 - hop) % world
                message = chunks[rank][index].clone()
                if fault is not None and (fault.sender, fault.phase, fault.hop) == (rank, phase, hop) \
                        and message.numel():
                    flip_bit(message, int(fault.element * message.numel()), fault.bit)
                    hit = Hit(f"ring {phase} hop {hop} from rank {rank}", message.dtype, fault.bit,
                              bit_field(message.dtype, fault.bit))
                messages.append((index, message))
            for rank, (index, message) in enumerate(messages):
                target = chunks[(rank + 1) % world][index]
                target.add_(message) if phase == "reduce_scatter" else target.copy_(message)
    for gs, f in zip(grads, flat):
        offset = 0
        for g in gs:
            g.copy_(f[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
    return hit
