"""allreduce: one bit of one message of one rank in the ring all-reduce of the gradients (reduce-scatter
or all-gather phase)."""

from iquest_core.reliability.drill.sites import register
from iquest_core.reliability.drill.step_site import StepSite
from iquest_core.reliability.simulated_dp import PHASES, MessageFault


class AllReduceSite(StepSite):
    fires = "allreduce"

    def message(self, rng, replica: int, world: int, element: float) -> MessageFault:
        return MessageFault(replica, rng.choice(PHASES), rng.randrange(world - 1), element, rng.randrange(32))


register(AllReduceSite("allreduce", 30))
