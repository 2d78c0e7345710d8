"""The drill's fault sites, one object each, in a registry.

A site is an object with a `name`, an `order` (its place in the report) and `experiment(drill) -> dict`,
which injects one fault into the drill's run and returns its record (site, kind, replica, step, where,
field, effective, outcome, ...; see `iquest_core.reliability.drill.report`). Training-step sites are
`StepSite`s (`step_site.py`); the checkpoint sites corrupt the trainer's checkpoint files
(`checkpoint_site.py`).

Adding a site is adding one module to this package that calls `register(...)`: every module here is
imported when the package is.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Protocol


class Site(Protocol):
    name: str
    order: int

    def experiment(self, drill: Any) -> dict: ...


REGISTRY: dict[str, Site] = {}


def register(site: Site) -> Site:
    if site.name in REGISTRY:
        raise ValueError(f"site: {site.name!r} is registered twice")
    REGISTRY[site.name] = site
    return site


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

SITES = tuple(sorted(REGISTRY, key=lambda name: REGISTRY[name].order))
