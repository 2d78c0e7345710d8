"""compute: the output of the k-th op (uniform over the value-computing ops of one replica's forward +
backward, the fused loop-attention kernels and their backward included), transient: the replay computes
it right. compute_recurring: the same, recurring identically in every re-execution (a deterministic
defect)."""

import math

from iquest_core.reliability.drill.sites import register
from iquest_core.reliability.drill.step_site import StepSite


class ComputeSite(StepSite):
    fires, counted = "compute", True

    def __init__(self, name: str, order: int, shots: float):
        super().__init__(name, order)
        self.shots = shots


register(ComputeSite("compute", 10, shots=1))
register(ComputeSite("compute_recurring", 20, shots=math.inf))
