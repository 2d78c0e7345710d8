"""One injected fault of the drill."""

from __future__ import annotations

from dataclasses import dataclass

from iquest_core.reliability.faults import OpFaultMode
from iquest_core.reliability.simulated_dp import MessageFault


@dataclass
class Injection:
    """One fault, fired at most `shots` times (1: transient, math.inf: recurring). For op faults,
    `target` None only counts the ops (`count`)."""

    site: str
    replica: int
    target: int | None = None
    element: float = 0.0
    bit: float = 0.0
    message: MessageFault | None = None
    shots: float = 1
    count: int = 0
    where: str | None = None
    field: str | None = None

    def fire(self, site: str, replica: int) -> bool:
        return self.site == site and self.replica == replica and self.shots > 0

    def mode(self) -> OpFaultMode:
        return OpFaultMode(self.target, self.element, self.bit)

    def fired(self, mode: OpFaultMode) -> None:
        self.count = mode.count
        if self.target is not None:
            self.shots -= 1
            if mode.hit is not None:
                self.where, self.field = mode.hit.op, mode.hit.field
