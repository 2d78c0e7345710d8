"""The in-process ring all-reduce: every replica ends with the same mean (float64 reference); a flipped
reduce-scatter message corrupts every replica alike, a flipped all-gather message only some."""

import pytest
import torch

from iquest_core.reliability.simulated_dp import MessageFault, ring_allreduce_mean

SHAPES = [(7, 3), (5,), (1, 1, 4)]


def grads(world):
    return [[torch.randn(*s) for s in SHAPES] for _ in range(world)]


@pytest.mark.parametrize("world", [2, 3, 5])
def test_every_replica_gets_the_same_mean(world):
    g = grads(world)
    expected = [torch.stack([r[i].double() for r in g]).mean(0) for i in range(len(SHAPES))]
    assert ring_allreduce_mean(g) is None
    for replica in g:
        for t, e, first in zip(replica, expected, g[0]):
            assert torch.equal(t, first)
            torch.testing.assert_close(t.double(), e, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("phase", ["reduce_scatter", "all_gather"])
def test_a_flipped_message(world, phase):
    g = grads(world)
    clean = [[t.clone() for t in r] for r in g]
    ring_allreduce_mean(clean)
    hit = ring_allreduce_mean(g, MessageFault(sender=world - 1, phase=phase, hop=0, element=0.5, bit=27))
    assert hit.field == "exponent" and phase in hit.op
    corrupted = [any(not torch.equal(a, b) for a, b in zip(r, c)) for r, c in zip(g, clean)]
    if phase == "reduce_scatter":
        assert all(corrupted) and all(torch.equal(a, b) for r in g for a, b in zip(r, g[0]))
    else:
        assert any(corrupted) and not all(corrupted)
