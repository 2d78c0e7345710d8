"""weights: one bit of a parameter of one replica at rest, before the step that reads it."""

from iquest_core.reliability.drill.sites import register
from iquest_core.reliability.drill.step_site import StepSite


class WeightsSite(StepSite):
    def at_rest(self, drill, replica: int):
        return {name: p.detach() for name, p in drill.models[replica].named_parameters()}


register(WeightsSite("weights", 50))
