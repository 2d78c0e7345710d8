"""optimizer: the output of the k-th op of one replica's optimizer step (kind "update"), or a value of its
state at rest before the step that reads it (kind "state")."""

from iquest_core.reliability.drill.sites import register
from iquest_core.reliability.drill.step_site import StepSite
from iquest_core.reliability.state import optimizer_tensors


class OptimizerUpdate(StepSite):
    fires, counted = "optimizer_update", True


class OptimizerState(StepSite):
    def at_rest(self, drill, replica: int):
        return {f"optimizer.{k}": v for k, v in optimizer_tensors(drill.optimizers[replica]).items()}


class OptimizerSite(StepSite):
    def __init__(self, name: str, order: int):
        super().__init__(name, order)
        self.variants = {"update": OptimizerUpdate(name, order), "state": OptimizerState(name, order)}

    def kind(self, rng) -> str:
        return rng.choice(("update", "state"))

    def variant(self, kind: str) -> StepSite:
        return self.variants[kind]


register(OptimizerSite("optimizer", 40))
