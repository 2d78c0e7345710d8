"""The silent-data-corruption drill (`iquest drill`, front end in `iquest_core.jobs.drill`): faults injected
where hardware makes them into a guarded data-parallel run, each classified as masked or effective and as
detected or missed; the report by site and bit field; the guard's overhead.

`runner`: the drill's training set-up, its experiments and `run_drill`; `injection`: one fault;
`checkpoint_file`: bit fields of checkpoint files; `report`: counts and the table; `overhead`: the
guard's cost per step."""

from iquest_core.reliability.drill.overhead import measure_overhead
from iquest_core.reliability.drill.report import format_table, summarise
from iquest_core.reliability.drill.runner import SITES, Drill, run_drill

__all__ = ["SITES", "Drill", "format_table", "measure_overhead", "run_drill", "summarise"]
