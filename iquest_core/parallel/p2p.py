"""Point-to-point transfers of a context-parallel group: ring shifts and neighbour exchanges, posted as
one symmetric batch_isend_irecv per call so that no rank can wait on a message nobody sent."""

from __future__ import annotations

import torch
import torch.distributed as dist


_bytes_sent = 0


def bytes_sent() -> int:
    """Bytes this process has sent through these transfers since the last reset_bytes_sent()."""
    return _bytes_sent


def reset_bytes_sent() -> None:
    global _bytes_sent
    _bytes_sent = 0


class Transfer:
    """Pending receives of one batch of P2P operations; wait() returns the received tensors."""

    def __init__(self, requests, received: list[torch.Tensor]):
        self._requests, self._received = requests, received

    def wait(self) -> list[torch.Tensor]:
        for request in self._requests:
            request.wait()
        return self._received


def exchange(sends: list[tuple[torch.Tensor, int]], recvs: list[tuple[torch.Tensor, int]],
             group: dist.ProcessGroup | None) -> Transfer:
    """Posts sends (tensor, group rank) and receives (buffer, group rank) together."""
    global _bytes_sent
    _bytes_sent += sum(t.numel() * t.element_size() for t, _ in sends)
    ops = [dist.P2POp(dist.isend, t.contiguous(), dist.get_global_rank(group, peer), group) for t, peer in sends]
    ops += [dist.P2POp(dist.irecv, buf, dist.get_global_rank(group, peer), group) for buf, peer in recvs]
    requests = dist.batch_isend_irecv(ops) if ops else []
    return Transfer(requests, [buf for buf, _ in recvs])


def ring_shift(t: torch.Tensor, group: dist.ProcessGroup | None) -> Transfer:
    """Sends t to the next rank of the ring and receives the previous rank's tensor of the same shape."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    if cp == 1:
        return Transfer([], [t])
    return exchange([(t, (rank + 1) % cp)], [(torch.empty_like(t), (rank - 1) % cp)], group)
