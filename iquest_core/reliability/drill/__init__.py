"""The silent-data-corruption drill (`iquest drill`, front end in `iquest_core.jobs.drill`): faults injected
where hardware makes them into a guarded data-parallel run, each classified as masked or effective and as
detected or missed; the report by site and bit field; the guard's overhead.

`runner`: the drill's training set-up and `run_drill`; `sites`: the fault sites, one object each, in a
registry (`step_site`: the sites inside a training step; `checkpoint_site`: the trainer's checkpoint
files); `injection`: one fault; `report`: counts and the table; `overhead`: the guard's cost per step."""

from iquest_core.reliability.drill.overhead import measure_overhead
from iquest_core.reliability.drill.report import format_table, summarise
from iquest_core.reliability.drill.runner import Drill, run_drill
from iquest_core.reliability.drill.sites import SITES

__all__ = ["SITES", "Drill", "format_table", "measure_overhead", "run_drill", "summarise"]
